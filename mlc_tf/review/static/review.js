// mlc-review: keyboard shortcuts on the suspects page, drag and drop on the tag page, heat-map toggles on a
// photo's page. The pages work without it.
document.addEventListener("keydown", (event) => {
  const target = event.target;
  // A heat-map toggle keeps A and R (they type nothing there) but its arrows, which change the label.
  const toggle = target.tagName === "INPUT" && target.type === "radio";
  if (event.ctrlKey || event.metaKey || event.altKey || (toggle && event.key.startsWith("Arrow")) ||
      (!toggle && ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName))) {
    return;
  }
  const clicks = {a: "accept", r: "reject", ArrowLeft: "previous", ArrowRight: "next"};
  const element = document.getElementById(clicks[event.key.length === 1 ? event.key.toLowerCase() : event.key]);
  if (element && document.getElementById("accept")) {
    event.preventDefault();
    element.click();
  }
});

document.addEventListener("DOMContentLoaded", () => {
  const drop = document.getElementById("drop");
  const input = document.getElementById("photo");
  if (!drop || !input) {
    return;
  }
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    input.files = event.dataTransfer.files;
    document.getElementById("upload").submit();
  });
});

// Heat maps: a toggle shows its label's Grad-CAM beside the photo at once, no reload (the "Show" button is the
// fallback without JavaScript). Radio buttons: Tab reaches the group, the arrow keys change the label.
document.addEventListener("DOMContentLoaded", () => {
  const figure = document.getElementById("heatmap");
  const show = document.getElementById("show-heatmap");
  if (!figure || !show) {
    return;
  }
  const image = document.getElementById("heatmap-image");
  const caption = document.getElementById("heatmap-caption");
  show.hidden = true;
  image.addEventListener("error", () => {
    caption.textContent = "the heat map could not be made: open its address for why";
  });
  for (const toggle of document.querySelectorAll("input[name=heatmap]")) {
    toggle.addEventListener("change", () => {
      figure.hidden = !toggle.dataset.src;
      if (toggle.dataset.src) {
        image.src = toggle.dataset.src;
        image.alt = `heat map of “${toggle.value}”`;
        caption.textContent = `where the model finds “${toggle.value}”`;
      }
    });
  }
});
