"""Image API URLs by version, ``info.json`` of 2.1 and 3.0, and the size requested for a method's longer side
(expected URLs written out from the Image API 2.1 / 3.0 specifications)."""

import pytest

from artdup_jax.data.iiif.image_api import (
    ImageInfo,
    confined_size,
    download_size,
    image_url,
    info_url,
    parse_info,
    region_percent,
    region_pixels,
)

BASE = "https://img.ex.org/iiif/page1"


def test_urls_of_each_version():
    assert image_url(BASE, 3) == f"{BASE}/full/max/0/default.jpg"
    assert image_url(BASE, 2) == f"{BASE}/full/full/0/default.jpg"
    assert image_url(BASE, 1) == f"{BASE}/full/full/0/native.jpg"
    assert image_url(BASE + "/", 3, region=region_pixels(10, 20.4, 300, 199.6), size="150,100") == \
        f"{BASE}/10,20,300,200/150,100/0/default.jpg"
    assert image_url(BASE, 2, region=region_percent(12.5, 0, 50, 33.333333), size=confined_size(256, 256),
                     fmt="png") == f"{BASE}/pct:12.5,0,50,33.3333/!256,256/0/default.png"
    assert info_url(BASE + "/info.json") == f"{BASE}/info.json"


def test_info_21_with_limits_in_the_profile():
    info = parse_info({"@context": "http://iiif.io/api/image/2/context.json", "@id": "http://internal:8080/p1",
                       "protocol": "http://iiif.io/api/image", "width": 6000, "height": 4000,
                       "profile": ["http://iiif.io/api/image/2/level2.json", {"maxWidth": 2000}],
                       "sizes": [{"width": 750, "height": 500}, {"width": 375, "height": 250}]}, base=BASE)
    assert info == ImageInfo(BASE, 2, 2, 6000, 4000, ((375, 250), (750, 500)), max_width=2000)


def test_info_30():
    info = parse_info({"@context": "http://iiif.io/api/image/3/context.json", "id": BASE, "type": "ImageService3",
                       "protocol": "http://iiif.io/api/image", "profile": "level1", "width": 1000, "height": 3000,
                       "maxArea": 1_000_000})
    assert (info.base, info.version, info.level, info.max_area) == (BASE, 3, 1, 1_000_000)


def test_info_without_a_size_is_refused():
    with pytest.raises(ValueError, match="no positive width and height"):
        parse_info({"id": BASE, "profile": "level2"})


def test_scaled_size_is_w_comma_in_21_and_w_h_in_30():
    assert download_size(ImageInfo(BASE, 2, 2, 6000, 4000), 1279) == ("1279,", (1279, 853))
    assert download_size(ImageInfo(BASE, 3, 1, 4000, 6000), 1279) == ("853,1279", (853, 1279))


def test_never_upscaled_and_none_means_largest():
    assert download_size(ImageInfo(BASE, 3, 2, 800, 600), 1279) == ("max", (800, 600))
    assert download_size(ImageInfo(BASE, 2, 2, 6000, 4000), None) == ("full", (6000, 4000))


def test_server_limits_are_respected():
    assert download_size(ImageInfo(BASE, 2, 2, 6000, 4000, max_width=1000), 1279) == ("1000,", (1000, 667))
    # maxHeight defaults to maxWidth (Image API 3.0, 5.3)
    assert download_size(ImageInfo(BASE, 3, 2, 4000, 6000, max_width=1000), 1279) == ("667,1000", (667, 1000))
    assert download_size(ImageInfo(BASE, 3, 2, 4000, 4000, max_area=250_000), 1279) == ("500,500", (500, 500))


def test_level_0_takes_the_smallest_listed_size_that_reaches_the_target():
    sizes = ((250, 375), (500, 750), (1000, 1500), (2000, 3000))
    assert download_size(ImageInfo(BASE, 3, 0, 2000, 3000, sizes), 700) == ("500,750", (500, 750))
    assert download_size(ImageInfo(BASE, 2, 0, 2000, 3000, sizes), 750) == ("500,", (500, 750))
    assert download_size(ImageInfo(BASE, 3, 0, 2000, 3000, sizes[:2]), 1279) == ("500,750", (500, 750))


def test_level_0_without_sizes_and_unknown_level_ask_for_the_whole_image():
    assert download_size(ImageInfo(BASE, 3, 0, 2000, 3000), 700) == ("max", (2000, 3000))
    assert download_size(ImageInfo(BASE, 2, None, 2000, 3000), 700) == ("full", (2000, 3000))
