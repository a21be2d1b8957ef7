/*
 * The "Copy value" button of a result's admin page: copies the full value
 * from its <pre> block. Uses the Clipboard API where the page is a secure
 * context (https or localhost) and falls back to selecting the text and
 * the browser's copy command; if both fail the text stays selected so
 * Ctrl+C / Cmd+C copies it. No network, no libraries.
 */
"use strict";
(function () {
  function selectContents(element) {
    const range = document.createRange();
    range.selectNodeContents(element);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function copyBySelection(element) {
    selectContents(element);
    try {
      return document.execCommand("copy");
    } catch (error) {
      return false;
    }
  }

  function report(status, text) {
    if (status) {
      status.textContent = text;
    }
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest(".result-copy");
    if (!button) {
      return;
    }
    const target = document.getElementById(button.dataset.copyTarget);
    const status = button.parentElement.querySelector(".result-copy-status");
    if (!target) {
      return;
    }
    const text = target.textContent;
    const copied = "Copied " + text.length.toLocaleString("en") + " characters.";
    const manual = "Selected: press Ctrl+C (Cmd+C) to copy.";
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { report(status, copied); },
        function () { report(status, copyBySelection(target) ? copied : manual); }
      );
    } else {
      report(status, copyBySelection(target) ? copied : manual);
    }
  });
})();
