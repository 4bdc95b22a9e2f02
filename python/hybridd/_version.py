# The project's version: project(hybridd VERSION ...) in the top CMakeLists.txt says the same,
# and tests/test_version.py holds the two equal.
__version__ = "0.1.0"
