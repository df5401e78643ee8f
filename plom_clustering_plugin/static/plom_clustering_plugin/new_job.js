/*
    SPDX-License-Identifier: AGPL-3.0-or-later
    The new-job page, without dependencies: drag on the reference page to draw the
    answer box (the four edge fields follow, and typing in them moves the box), see a
    live preview of the crops, take the suggested kind until the user picks one, and
    change question/version/page by choosing from the lists.
*/

(() => {
  'use strict';
  const EDGES = ['left', 'top', 'right', 'bottom'];
  const PREVIEW_DELAY_MS = 350;

  // Changing question, version or page reloads the page for it.
  document.querySelectorAll('form[data-autosubmit] select').forEach((select) => {
    select.addEventListener('change', () => {
      const page = select.form.elements.namedItem('page');
      if (select.name !== 'page' && page) {
        page.value = ''; // the new question's first page
      }
      select.form.submit();
    });
  });

  const area = document.getElementById('clu-draw');
  const form = document.getElementById('new-job-form');
  if (!area || !form) {
    return;
  }
  const image = area.querySelector('img');
  const box = area.querySelector('.clu-box');
  const qrOutline = area.querySelector('.clu-qrbox');
  const preview = document.getElementById('clu-preview');
  const natural = { width: Number(area.dataset.width), height: Number(area.dataset.height) };
  const qr = {
    left: Number(area.dataset.qrLeft),
    top: Number(area.dataset.qrTop),
    right: Number(area.dataset.qrRight),
    bottom: Number(area.dataset.qrBottom),
  };
  let kindChosen = form.hasAttribute('data-kind-chosen');
  let dragStart = null;
  let previewTimer = null;
  let previewRequest = null;

  /** Displayed pixels per reference pixel. */
  const scale = () => image.clientWidth / natural.width;
  const edgeInput = (edge) => form.elements.namedItem(edge);

  /**
   * Place an outline over the image.
   * @param {HTMLElement} element - the outline.
   * @param {object} r - left/top/right/bottom in reference pixels.
   */
  function place(element, r) {
    const s = scale();
    element.style.left = `${r.left * s}px`;
    element.style.top = `${r.top * s}px`;
    element.style.width = `${(r.right - r.left) * s}px`;
    element.style.height = `${(r.bottom - r.top) * s}px`;
    element.hidden = false;
  }

  /** Draw the box the four edge fields describe (QR fractions), if they do. */
  function drawFromFields() {
    place(qrOutline, qr);
    const f = Object.fromEntries(EDGES.map((edge) => [edge, parseFloat(edgeInput(edge).value)]));
    if (!EDGES.every((edge) => Number.isFinite(f[edge])) || f.right <= f.left || f.bottom <= f.top) {
      box.hidden = true;
      return;
    }
    const width = qr.right - qr.left;
    const height = qr.bottom - qr.top;
    place(box, {
      left: qr.left + f.left * width,
      top: qr.top + f.top * height,
      right: qr.left + f.right * width,
      bottom: qr.top + f.bottom * height,
    });
  }

  /**
   * The pointer position in reference pixels, kept on the image.
   * @param {PointerEvent} event
   * @returns {{x: number, y: number}}
   */
  function pointerAt(event) {
    const bounds = image.getBoundingClientRect();
    const s = scale();
    const x = Math.min(Math.max(event.clientX - bounds.left, 0), bounds.width);
    const y = Math.min(Math.max(event.clientY - bounds.top, 0), bounds.height);
    return { x: x / s, y: y / s };
  }

  /** Write the dragged box into the edge fields as QR fractions. */
  function setFields(a, b) {
    const width = qr.right - qr.left;
    const height = qr.bottom - qr.top;
    const values = {
      left: (Math.min(a.x, b.x) - qr.left) / width,
      top: (Math.min(a.y, b.y) - qr.top) / height,
      right: (Math.max(a.x, b.x) - qr.left) / width,
      bottom: (Math.max(a.y, b.y) - qr.top) / height,
    };
    EDGES.forEach((edge) => {
      edgeInput(edge).value = values[edge].toFixed(4);
    });
    drawFromFields();
  }

  area.addEventListener('pointerdown', (event) => {
    if (event.button !== 0) {
      return;
    }
    event.preventDefault();
    area.setPointerCapture(event.pointerId);
    dragStart = pointerAt(event);
  });
  area.addEventListener('pointermove', (event) => {
    if (dragStart) {
      setFields(dragStart, pointerAt(event));
    }
  });
  area.addEventListener('pointerup', (event) => {
    if (!dragStart) {
      return;
    }
    const end = pointerAt(event);
    const start = dragStart;
    dragStart = null;
    // A click without a drag keeps the previous box.
    if (Math.abs(end.x - start.x) * scale() < 4 || Math.abs(end.y - start.y) * scale() < 4) {
      drawFromFields();
      return;
    }
    setFields(start, end);
    schedulePreview();
  });

  form.addEventListener('input', (event) => {
    if (EDGES.includes(event.target.name)) {
      drawFromFields();
      schedulePreview();
    }
  });
  form.addEventListener('change', (event) => {
    if (event.target.name === 'kind') {
      kindChosen = true;
    }
  });

  // With this script, "Update preview" and "Other papers" refresh in place.
  form.addEventListener('click', (event) => {
    const button = event.target.closest('button[name="preview"], button[name="reseed"]');
    if (!button) {
      return;
    }
    event.preventDefault();
    if (button.name === 'reseed') {
      const seed = form.elements.namedItem('seed');
      seed.value = String((parseInt(seed.value, 10) || 0) + 1);
    }
    loadPreview();
  });

  function schedulePreview() {
    window.clearTimeout(previewTimer);
    previewTimer = window.setTimeout(loadPreview, PREVIEW_DELAY_MS);
  }

  /** Fetch the preview fragment for the current box and show it. */
  async function loadPreview() {
    const params = new URLSearchParams();
    ['question', 'version', 'page', 'seed', ...EDGES].forEach((name) => {
      params.set(name, form.elements.namedItem(name).value);
    });
    if (previewRequest) {
      previewRequest.abort();
    }
    previewRequest = new AbortController();
    preview.setAttribute('aria-busy', 'true');
    try {
      const response = await fetch(`${preview.dataset.previewUrl}?${params}`, {
        credentials: 'same-origin',
        signal: previewRequest.signal,
      });
      preview.innerHTML = await response.text();
      takeSuggestion();
    } catch (error) {
      if (error.name !== 'AbortError') {
        preview.textContent = `The preview could not be loaded (${error.message}).`;
      }
    } finally {
      preview.removeAttribute('aria-busy');
    }
  }

  /** Tick the suggested kind, unless the user has chosen one. */
  function takeSuggestion() {
    const suggestion = preview.querySelector('[data-suggested-kind]');
    if (kindChosen || !suggestion) {
      return;
    }
    const radio = form.querySelector(`input[name="kind"][value="${suggestion.dataset.suggestedKind}"]`);
    if (radio) {
      radio.checked = true;
    }
  }

  if (image.complete) {
    drawFromFields();
  }
  image.addEventListener('load', drawFromFields);
  window.addEventListener('resize', drawFromFields);
})();
