// Whether a live region may be refreshed now: the tab is visible and the reader is not busy in
// the region (runs ticked for a bulk action, a control focused, or text selected), so a refresh
// never unticks a box, swaps a button away while it is pressed or drops a selection.
function questIdle(region) {
  if (document.hidden) return false;
  if (region.querySelector("input:checked, :focus")) return false;
  const selection = document.getSelection();
  return !(selection && !selection.isCollapsed && region.contains(selection.anchorNode));
}
