"""A tiny synthetic collection, the discovery settings the index tests use, and its reference discovery.

Random weights (``init_variables(0)``), 8 images of 128 x 160 px (2 planted categories of 3 exact copies, 2
distractors), small grids and 50 RANSAC hypotheses: a discovery takes seconds on 2 shared cores.
"""

import shutil

import pytest

from artdup_jax.app.discover import discover_folder
from artdup_jax.artminer.discovery import DiscoveryConfig
from artdup_jax.data.synthetic_collection import make_collection

CONFIG = DiscoveryConfig(reference_cells=12, margin=2, scales=(16, 12), descriptor_cells=12, saliency=False,
                         threshold=0.15, pairs_per_batch=8, top_k=4, iterations=50)


@pytest.fixture(scope="session")
def collection(tmp_path_factory):
    folder = tmp_path_factory.mktemp("collection")
    make_collection(folder, seed=0, num_categories=2, instances_per_category=3, num_distractors=2,
                    image_size=(128, 160), detail_fraction=(0.4, 0.5), aspect_jitter=0.1, style_strength=0.0,
                    context=0.3, border=16)
    return folder


@pytest.fixture(scope="session")
def reference_run(collection, tmp_path_factory):
    """``discover_folder`` on the collection: what an index must reproduce."""
    return discover_folder(collection, tmp_path_factory.mktemp("reference"), CONFIG)


@pytest.fixture
def copy_of(tmp_path):
    """A copy of a folder under this test's tmp_path (tests that edit files or indexes)."""
    def copy(folder, name="copy"):
        return shutil.copytree(folder, tmp_path / name)
    return copy


def same_discovery(a: dict, b: dict) -> bool:
    """Two discovery.json documents with equal groups (images, regions, pairs, region groups) and top pairs."""
    return a["groups"] == b["groups"] and a["top_pairs"] == b["top_pairs"] and a["images"] == b["images"]
