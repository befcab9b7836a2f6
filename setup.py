"""Packaging beyond pyproject.toml: the browser extension ships inside the package.

extension/ stays at the top of the repository, loaded unpacked from a clone with no build step. An installed
consentwatch (pip or pipx) carries the same files as the package `consentwatch.extension`, so
`consentwatch extension-path` can say where they are. pyproject.toml alone cannot map a directory outside src/
into the package while still finding the packages by itself; which files go in is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

setup(
    package_dir={"": "src", "consentwatch.extension": "extension"},
    packages=[*find_namespace_packages("src", include=["consentwatch", "consentwatch.*"]), "consentwatch.extension"],
)
