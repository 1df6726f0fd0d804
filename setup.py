"""Only what pyproject.toml cannot say: the recipes (hub_configs/*.yaml, at the top of the checkout)
ship inside the wheel as zoo/hub_configs/, so recipe ids work from an installed zooscope too."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithRecipes(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's hub_configs/ directly (zoo.recipes.recipe_dirs)
        target = Path(self.build_lib) / "zoo" / "hub_configs"
        target.mkdir(parents=True, exist_ok=True)
        for recipe in sorted((HERE / "hub_configs").glob("*.yaml")):
            self.copy_file(str(recipe), str(target / recipe.name))


setup(cmdclass={"build_py": BuildPyWithRecipes})
