"""Sphinx configuration of nbbp's documentation.

Build, from the repository root (warnings are errors, references are checked):

    python -m sphinx -W --keep-going -n -b html docs docs/_build/html

The pages are MyST Markdown; their ``{code-cell}`` blocks are executed by myst-nb at every build
against the installed nbbp, and a cell that raises fails the build.
"""

import re

import nbbp

project = "nbbp"
author = "the nbbp authors"
copyright = "the nbbp authors"
release = nbbp.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
exclude_patterns = ["_build", "jupyter_execute", ".jupyter_cache", "requirements.txt",
                    "**.ipynb_checkpoints"]
templates_path = ["_templates"]
root_doc = "index"

# ------------------------------------------------------------------------------------- MyST
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# ----------------------------------------------------------------------------------- myst-nb
# Every code cell runs at every build (no cache, so a clean checkout and CI see the same), in
# one kernel per page; a cell that raises fails the build, and so does one that runs too long.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 180  # seconds per cell: a first fit compiles Numba kernels (10-30 s)
nb_merge_streams = True
nb_kernel_rgx_aliases = {".*": "python3"}
# Each page runs in a temporary folder: files the examples write (models, CSVs) go there.
nb_execution_in_temp = True

# ----------------------------------------------------------------------- autodoc, autosummary
autosummary_generate = True
autosummary_imported_members = False
autosummary_ignore_module_all = False  # a module's __all__, where it has one, is its API
autodoc_default_options = {
    "member-order": "bysource",
    "undoc-members": True,  # reference.sigmoid, the skl2onnx converters: named, not described
    # scikit-learn's metadata-routing methods, which its base classes add to the estimators
    "exclude-members": "set_fit_request,set_partial_fit_request,set_score_request",
}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autodoc_inherit_docstrings = True

# numpydoc renders the docstrings' Parameters / Returns / Attributes sections. Member tables are
# autosummary's job (our class template), not numpydoc's.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# --------------------------------------------------------------------------------- intersphinx
intersphinx_mapping = {}  # no network at build time: references to NumPy etc. are plain text

# ----------------------------------------------------------------------------------- nitpicky
# Base classes shown by :show-inheritance: that have no page here: nbbp's private ones, and
# scikit-learn's (intersphinx is off, so that the build needs no network).
nitpick_ignore = [("py:class", "nbbp._validation.Spec"), ("py:class", "nbbp.sklearn._BaseMLP")]
nitpick_ignore_regex = [("py:class", r"sklearn\..*")]

# ------------------------------------------------------------------------------------- output
html_theme = "furo"
html_title = f"nbbp {release}"
html_static_path: list[str] = []
pygments_style = "sphinx"


# ------------------------------------------------------------- plain-text formulas in docstrings
# nbbp's docstrings write formulas as plain text, which reStructuredText would misread: |delta|
# as a substitution, clip_grad_norm_ and coefs_ as hyperlink references, x *= 2 as emphasis, and
# a paragraph ending in ":" over an indented block of formulas as a block quote. This handler
# runs before numpydoc's (priority 100 < 500) and escapes |, * and a word's trailing _ outside
# ``literals``, and makes such a block a literal block ("::"), so that the text reads as written.
_LITERAL = re.compile(r"(``.+?``|`[^`]+`)")
_TRAILING_UNDERSCORE = re.compile(r"(?<=\w)_(?=\W|$)")


def _escape_plain_text(line):
    parts = _LITERAL.split(line)
    for n in range(0, len(parts), 2):  # the even parts are outside literals
        text = parts[n].replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")
        parts[n] = _TRAILING_UNDERSCORE.sub(r"\\_", text)
    return "".join(parts)


def _indent(line):
    return len(line) - len(line.lstrip())


def plain_text_docstring(app, what, name, obj, options, lines):
    in_literal_block, block_indent = False, 0
    for n, line in enumerate(lines):
        if in_literal_block:
            if line.strip() and _indent(line) <= block_indent:
                in_literal_block = False
            else:
                continue  # a literal block is shown as written
        lines[n] = _escape_plain_text(line)
        stripped = line.rstrip()
        following = list(lines[n + 1:n + 3])
        if (stripped.endswith(":") and len(following) == 2 and not following[0].strip()
                and following[1].strip() and _indent(following[1]) > _indent(line)):
            if not stripped.endswith("::"):
                lines[n] = lines[n].rstrip() + ":"
            in_literal_block, block_indent = True, _indent(line)


def setup(app):
    app.connect("autodoc-process-docstring", plain_text_docstring, priority=100)
