// Progressive enhancement only: every page works without this script.
document.addEventListener("DOMContentLoaded", () => {
  // "Select all" for the bulk actions of the dead-letter list.
  const all = document.getElementById("select-all");
  if (all) {
    const boxes = () => document.querySelectorAll('#bulk input[name="ids"]');
    all.hidden = false;
    all.addEventListener("change", () => boxes().forEach((box) => { box.checked = all.checked; }));
  }
  // Ask before destructive actions.
  document.querySelectorAll("button.danger").forEach((button) => {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.textContent.trim() + "?")) event.preventDefault();
    });
  });
});
