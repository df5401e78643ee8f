/*
    SPDX-License-Identifier: AGPL-3.0-or-later
    Refresh the parts of a page that carry data-poll-url (a job's progress, the job
    list) every 2 s, where htmx is missing; with htmx, hx-trigger="every 2s" does it.
*/

(() => {
  'use strict';
  if (window.htmx) {
    return;
  }
  const EVERY_MS = 2000;

  /**
   * Fetch the element's fragment later and swap it in; keep going while the new
   * fragment still asks to be polled.
   * @param {HTMLElement} element - an element with a data-poll-url attribute.
   */
  function schedule(element) {
    window.setTimeout(async () => {
      if (!document.body.contains(element)) {
        return;
      }
      try {
        const response = await fetch(element.dataset.pollUrl, {
          credentials: 'same-origin',
        });
        // The same signal htmx honours: the page itself must change (job finished).
        if (response.headers.get('HX-Refresh') === 'true') {
          window.location.reload();
          return;
        }
        if (!response.ok) {
          throw new Error(`HTTP ${response.status}`);
        }
        const template = document.createElement('template');
        template.innerHTML = (await response.text()).trim();
        const fresh = template.content.firstElementChild;
        if (!fresh) {
          return;
        }
        element.replaceWith(fresh);
        if (fresh.dataset.pollUrl) {
          schedule(fresh);
        }
      } catch (error) {
        schedule(element); // the server may be restarting: try again later
      }
    }, EVERY_MS);
  }

  document.querySelectorAll('[data-poll-url]').forEach(schedule);
})();
