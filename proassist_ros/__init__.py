"""proassist_ros: proactive task guidance from egocentric video (ProAssist, arXiv 2506.05904).

The generated interfaces (``proassist_ros.msg``, ``proassist_ros.srv``) are installed by CMake into
a different directory than the Python sources in a development venv; extending ``__path__`` lets
both halves import as one package (see CMakeLists.txt and docs/environment notes).
"""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)
__version__ = "0.1.0"
