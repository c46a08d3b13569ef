# filter.awk drops lines naming a path listed in ENVIRON["SC_SKIP"]
# (newline-separated: the shared links) or below it. -v kind says where the
# path is in a line: "sums" (a sha256sum list), "links" (before " -> "),
# "typed" (after a type letter and a blank, and for a symlink, "l", before
# " -> ") or "plain". The list comes from the environment rather than -v, which would
# treat backslashes in it as escapes.
BEGIN { ns = split(ENVIRON["SC_SKIP"], skip, "\n") }
{
  p = $0
  if (kind == "sums") p = substr($0, 67)
  else if (kind == "links") { i = index($0, " -> "); if (i) p = substr($0, 1, i - 1) }
  else if (kind == "typed") { p = substr($0, 3); if (substr($0, 1, 1) == "l") { i = index(p, " -> "); if (i) p = substr(p, 1, i - 1) } }
  for (j = 1; j <= ns; j++) if (skip[j] != "" && (p == skip[j] || index(p, skip[j] "/") == 1)) next
  print
}
