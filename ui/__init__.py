"""The web UI's static files (index.html, the page's ES modules, vendored Preact and htm).

A package only so that the files are installed with nfo and found next to this module;
:mod:`nfo.restconf.webui` serves them at ``/ui/``.
"""
