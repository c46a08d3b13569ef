# check_archive.awk reads `tar -tzv --numeric-owner --quoting-style=escape`
# (or the -xvv listing, which has the same format) and prints one line per
# entry that is not a plain file, directory or symlink, has an absolute name
# or a ".." component, or is a symlink whose target leaves the release or
# whose line does not split into one name and one target at " -> "; it
# exits 1 when it printed any. GNU tar refuses most of these by itself: this
# is a second fence, the tree's check against the manifest being the real
# guarantee. Staging also counts on it refusing hard links: only its own
# links from the live release give a file of the release more than one.
function bad(why, name) { print "unsafe archive entry " name ": " why; n++ }
{
  t = substr($0, 1, 1); rest = $0
  sub(/^[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ /, "", rest)
  name = rest; target = ""
  if (t == "l") { i = index(rest, " -> "); name = substr(rest, 1, i - 1); target = substr(rest, i + 4) }
  if (t != "-" && t != "d" && t != "l") { bad("type " t " is not a file, directory or symlink", name); next }
  # tar does not escape " -> ": with a second one in the line, the link's
  # name could end at either, and the target checked would be the wrong one.
  if (t == "l" && (i == 0 || index(target, " -> "))) { bad("symlink line has no single \" -> \" between name and target", rest); next }
  if (substr(name, 1, 1) == "/") { bad("absolute name", name); next }
  k = split(name, c, "/"); depth = 0
  for (j = 1; j <= k; j++) {
    if (c[j] == "..") { bad("\"..\" in name", name); next }
    if (c[j] != "" && c[j] != ".") depth++
  }
  if (t != "l") next
  if (substr(target, 1, 1) == "/") { bad("symlink to absolute path " target, name); next }
  depth--
  k = split(target, c, "/")
  for (j = 1; j <= k; j++) {
    if (c[j] == "..") depth--; else if (c[j] != "" && c[j] != ".") depth++
    if (depth < 0) { bad("symlink " target " leaves the release", name); next }
  }
}
END { exit n > 0 }
