// mlc-review: keyboard shortcuts on the suspects page, drag and drop on the tag page. The pages work without it.
document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName)) {
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
