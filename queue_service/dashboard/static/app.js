// Progressive enhancement only: every page works without this script.
"use strict";

const REFRESH_SETTING = "queue-dashboard.auto-refresh";

// The browser may refuse storage (private modes, policies): then the choice lasts for the page only.
function remembered(key) {
  try { return window.localStorage.getItem(key); } catch (error) { return null; }
}
function remember(key, value) {
  try { window.localStorage.setItem(key, value); } catch (error) { /* not kept */ }
}

// "Select all" for the bulk actions of the dead-letter list.
function selectAll() {
  const all = document.getElementById("select-all");
  if (!all) return;
  const boxes = () => document.querySelectorAll('#bulk input[name="ids"]');
  all.hidden = false;
  all.addEventListener("change", () => boxes().forEach((box) => { box.checked = all.checked; }));
}

// Ask before destructive actions, but only once the form is complete: check first, then confirm.
// Delegated from the document, so it also covers content that auto-refresh replaced.
function confirmDangerousActions() {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.danger");
    if (!button) return;
    const needed = button.dataset.requires ? document.getElementById(button.dataset.requires) : null;
    if (needed && !needed.value.trim()) {
      event.preventDefault();
      needed.setCustomValidity(button.dataset.missing || "Fill this in first.");
      needed.reportValidity();
      needed.addEventListener("input", () => needed.setCustomValidity(""), { once: true });
      return;
    }
    // An incomplete form: let the browser say what is missing, and ask nothing yet.
    if (button.form && !button.form.checkValidity()) return;
    if (!window.confirm(button.textContent.trim() + "?")) event.preventDefault();
  });
}

// Opt-in auto-refresh: fetch this page again and swap in its content, without a reload.
// The choice is kept in this browser; it pauses while the tab is hidden or a field has focus.
function autoRefresh() {
  const bar = document.querySelector("[data-refresh-every]");
  const content = document.getElementById("page-content");
  if (!bar || !content) return;
  const toggle = bar.querySelector('input[type="checkbox"]');
  const status = document.getElementById("refresh-status");
  const every = Number(bar.dataset.refreshEvery) * 1000;
  let timer = null;

  const editing = () => {
    const active = document.activeElement;
    return active && content.contains(active) && active.matches("input, select, textarea");
  };
  const schedule = () => {
    if (toggle.checked && timer === null) timer = window.setTimeout(refresh, every);
  };
  async function refresh() {
    timer = null;
    if (!toggle.checked) return;
    if (!document.hidden && !editing()) {
      try {
        const response = await fetch(window.location.href, { cache: "no-store", credentials: "same-origin" });
        if (response.redirected) {
          window.location.assign(response.url); // signed out meanwhile: show the sign-in page
          return;
        }
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.getElementById("page-content");
        if (response.ok && fresh && toggle.checked) {
          content.replaceChildren(...fresh.childNodes);
          status.textContent = "Updated " + new Date().toLocaleTimeString();
        } else if (!response.ok) {
          status.textContent = "Refresh failed (HTTP " + response.status + "); trying again.";
        }
      } catch (error) {
        status.textContent = "The dashboard is not reachable; trying again.";
      }
    }
    schedule();
  }

  bar.hidden = false;
  toggle.checked = remembered(REFRESH_SETTING) === "on";
  toggle.addEventListener("change", () => {
    remember(REFRESH_SETTING, toggle.checked ? "on" : "off");
    if (toggle.checked) {
      schedule();
    } else {
      window.clearTimeout(timer);
      timer = null;
      status.textContent = "";
    }
  });
  schedule();
}

document.addEventListener("DOMContentLoaded", () => {
  selectAll();
  confirmDangerousActions();
  autoRefresh();
});
