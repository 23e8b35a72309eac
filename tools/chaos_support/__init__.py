"""The chaos harness of ``tools/chaos`` (issue 12), importable by its CI subset.

It drives a real ``nfo serve`` as a black box: RESTCONF writes in, SIGKILL at random
moments, restarts on the same state directory, and after each restart a check of what
the VIM really holds (the sim VIM's own resource table, or the local VIM's processes in
/proc) against what is configured.  See docs/chaos.md.
"""
