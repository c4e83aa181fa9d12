"""Installs the top-level area folders as sub-packages of `funfactory` (docs/architecture.md, layout).

`pipelines/` becomes `funfactory.pipelines`, and so on, so nothing generic such as `model`
or `eval` lands in site-packages on its own. Metadata lives in pyproject.toml.
"""

from setuptools import find_packages, setup

AREAS = ("pipelines", "synth", "shards", "training", "model", "eval", "tests")

packages = ["funfactory", *(f"funfactory.{p}" for p in find_packages("funfactory"))]
package_dir = {"funfactory": "funfactory"}
for area in AREAS:
    package_dir[f"funfactory.{area}"] = area
    packages += [f"funfactory.{area}", *(f"funfactory.{area}.{p}" for p in find_packages(area))]

setup(packages=packages, package_dir=package_dir, include_package_data=True,
      package_data={"": ["*.yaml", "*.json", "*.txt"]})
