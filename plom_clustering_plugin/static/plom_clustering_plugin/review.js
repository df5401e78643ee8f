/*
    SPDX-License-Identifier: AGPL-3.0-or-later
    Selecting answers on the review page, without dependencies: click ticks one,
    shift-click ticks the range since the last click, "all" ticks a whole cluster.
    Also: a live "N selected" count, typing a new name chooses "a new cluster", and
    forms with data-confirm ask first (htmx asks itself through hx-confirm).
*/

(() => {
  'use strict';
  let lastClicked = null;
  let shiftOnLabel = false;

  const answerBoxes = () => Array.from(document.querySelectorAll('input[data-answer]'));

  /** Show how many answers are ticked, and keep each "all" box in step. */
  function refresh() {
    const boxes = answerBoxes();
    const count = boxes.filter((box) => box.checked).length;
    document.querySelectorAll('[data-selected-count]').forEach((element) => {
      element.textContent = `${count} selected`;
    });
    document.querySelectorAll('input[data-select-all]').forEach((all) => {
      const group = boxes.filter((box) => box.dataset.group === all.dataset.selectAll);
      const ticked = group.filter((box) => box.checked).length;
      all.checked = group.length > 0 && ticked === group.length;
      all.indeterminate = ticked > 0 && ticked < group.length;
    });
  }

  // Clicking the picture clicks the box through its label; remember the shift key in
  // case the browser's label click does not carry it over.
  document.addEventListener(
    'click',
    (event) => {
      const target = event.target;
      if (!(target instanceof Element)) {
        return;
      }
      if (target.matches('input[data-answer]')) {
        const shift = event.shiftKey || shiftOnLabel;
        shiftOnLabel = false;
        if (shift && lastClicked && lastClicked !== target && document.body.contains(lastClicked)) {
          const boxes = answerBoxes();
          const [from, to] = [boxes.indexOf(lastClicked), boxes.indexOf(target)].sort((a, b) => a - b);
          boxes.slice(from, to + 1).forEach((box) => {
            box.checked = target.checked;
          });
        }
        lastClicked = target;
        refresh();
      } else if (target.closest('.clu-answer-label')) {
        shiftOnLabel = event.shiftKey;
      }
    },
    true,
  );

  document.addEventListener('change', (event) => {
    const target = event.target;
    if (target instanceof HTMLInputElement && target.matches('input[data-select-all]')) {
      answerBoxes()
        .filter((box) => box.dataset.group === target.dataset.selectAll)
        .forEach((box) => {
          box.checked = target.checked;
        });
      refresh();
    } else if (target instanceof HTMLInputElement && target.matches('input[data-answer]')) {
      refresh();
    }
  });

  document.addEventListener('input', (event) => {
    const target = event.target;
    if (target instanceof HTMLInputElement && target.name === 'new_name' && target.form) {
      const choice = target.form.elements.namedItem('to_cluster');
      if (choice && target.value.trim()) {
        choice.value = 'new';
      }
    }
  });

  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (window.htmx || !(form instanceof HTMLFormElement) || !form.dataset.confirm) {
      return;
    }
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  // htmx swaps in a freshly rendered review: nothing is ticked any more.
  document.addEventListener('htmx:afterSwap', () => {
    lastClicked = null;
    refresh();
  });
  document.addEventListener('DOMContentLoaded', refresh);
  // Browsers restore ticked boxes on "back": count them.
  window.addEventListener('pageshow', refresh);
})();
