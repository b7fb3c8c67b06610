"""Invariants of hgn_tf.physics.render: each disc sits at its projected pixel, keeps its total
intensity as it moves, has the right size, composites in order; bad arguments are refused."""

import numpy as np
import pytest

from hgn_tf.errors import DataError
from hgn_tf.physics.render import (
    DEFAULT_BACKGROUND,
    SUPPORTED_RESOLUTIONS,
    project,
    render,
)

EXTENT = 1.7
RADIUS = 0.32  # 3 pixels at 32x32


def _white_on_black(positions, resolution, **kwargs):
    """Renders one white body on black and returns its intensity [..., H, W] in [0, 1]."""
    images = render(
        positions,
        extent=EXTENT,
        body_radius=RADIUS,
        colours=[(1.0, 1.0, 1.0)],
        background=(0.0, 0.0, 0.0),
        resolution=resolution,
        **kwargs,
    )
    assert np.all(images == images[..., :1])  # grey: all channels equal
    return images[..., 0].astype(np.float64) / 255


def _centroids(intensity):
    """Intensity-weighted centroid (col, row) of each image [..., H, W], pixel centres at +0.5."""
    centres = np.arange(intensity.shape[-1]) + 0.5
    mass = intensity.sum(axis=(-2, -1))
    col = (intensity * centres).sum(axis=(-2, -1)) / mass
    row = (intensity * centres[:, None]).sum(axis=(-2, -1)) / mass
    return np.stack([col, row], axis=-1)


def _trajectory(n_frames=240, seed=0):
    """A wandering path [1, T, 1, 2] with sub-pixel steps, kept well inside the canvas."""
    rng = np.random.default_rng(seed)
    steps = rng.uniform(-0.02, 0.02, size=(n_frames, 2))
    return np.clip(np.cumsum(steps, axis=0) + rng.uniform(-0.5, 0.5, 2), -1.2, 1.2)[None, :, None]


@pytest.mark.parametrize("resolution", SUPPORTED_RESOLUTIONS)
def test_disc_centroid_is_at_the_projected_position(resolution):
    positions = _trajectory()
    intensity = _white_on_black(positions, resolution)
    expected = project(positions[:, :, 0], EXTENT, resolution)
    error = np.linalg.norm(_centroids(intensity) - expected, axis=-1)
    assert error.max() < 0.02  # pixels


@pytest.mark.parametrize("resolution", SUPPORTED_RESOLUTIONS)
def test_disc_total_intensity_is_constant_and_its_area_is_right(resolution):
    intensity = _white_on_black(_trajectory(), resolution)
    total = intensity.sum(axis=(-2, -1))[0]
    assert (total.max() - total.min()) / total.mean() < 0.01
    # A Gaussian-blurred edge keeps the area pi R^2 (to O(sigma^2 / R^2)).
    radius_px = RADIUS * resolution / (2 * EXTENT)
    np.testing.assert_allclose(total.mean(), np.pi * radius_px**2, rtol=0.05)


def test_64_is_the_32_picture_at_twice_the_resolution():
    positions = _trajectory(40)
    small, large = _white_on_black(positions, 32), _white_on_black(positions, 64)
    np.testing.assert_allclose(large.sum(axis=(-2, -1)), 4 * small.sum(axis=(-2, -1)), rtol=0.01)
    np.testing.assert_allclose(_centroids(large), 2 * _centroids(small), atol=0.04)


def test_project_maps_the_world_square_onto_the_image():
    corners = np.array([[-EXTENT, EXTENT], [EXTENT, -EXTENT], [0.0, 0.0], [EXTENT, EXTENT]])
    np.testing.assert_allclose(project(corners, EXTENT, 32), [[0, 0], [32, 32], [16, 16], [32, 0]])
    np.testing.assert_allclose(project(corners, EXTENT, 64), [[0, 0], [64, 64], [32, 32], [64, 0]])


def test_orientation_x_right_y_up():
    intensity = _white_on_black(np.array([[[1.0, 0.0]], [[0.0, 1.0]]]), 32)
    col, row = _centroids(intensity).T
    assert col[0] > 24 and abs(row[0] - 16) < 0.01  # +x: right of centre
    assert row[1] < 8 and abs(col[1] - 16) < 0.01  # +y: above centre (row 0 is the top)


def test_background_and_compositing_order():
    red, blue = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
    same_place = np.zeros((1, 2, 2))
    images = render(same_place, extent=EXTENT, body_radius=RADIUS, colours=[red, blue])
    np.testing.assert_array_equal(images[0, 15:17, 15:17], [[[0, 0, 255]] * 2] * 2)  # last on top
    far_corner = images[0, 0, 0]
    np.testing.assert_array_equal(far_corner, np.rint(np.array(DEFAULT_BACKGROUND) * 255))
    assert far_corner.min() > 0  # not a black background
    swapped = render(same_place, extent=EXTENT, body_radius=RADIUS, colours=[blue, red])
    np.testing.assert_array_equal(swapped[0, 16, 16], [255, 0, 0])


@pytest.mark.parametrize("far", [2.5, 10.0, 1e12])
def test_a_disc_off_the_canvas_leaves_only_background(far):
    positions = np.array([[[far, -far]], [[-far, 0.0]]])
    images = render(positions, extent=EXTENT, body_radius=RADIUS, colours=[(1, 1, 1)])
    np.testing.assert_array_equal(
        images, np.broadcast_to(np.rint(np.array(DEFAULT_BACKGROUND) * 255), images.shape)
    )


def test_leading_axes_and_chunking_do_not_change_the_pictures():
    rng = np.random.default_rng(1)
    positions = rng.uniform(-1.3, 1.3, size=(3, 250, 2, 2))  # 750 frames: more than one chunk
    kwargs = {
        "extent": EXTENT,
        "body_radius": RADIUS,
        "colours": [(0.9, 0.2, 0.2), (0.2, 0.9, 0.2)],
    }
    all_at_once = render(positions, **kwargs)
    assert all_at_once.shape == (3, 250, 32, 32, 3) and all_at_once.dtype == np.uint8
    one_by_one = np.stack([render(positions[i], **kwargs) for i in range(3)])
    np.testing.assert_array_equal(all_at_once, one_by_one)
    np.testing.assert_array_equal(all_at_once[2, 249], render(positions[2, 249], **kwargs))


@pytest.mark.parametrize("resolution", [16, 48, 128, 32.0, "32", True])
def test_unsupported_resolution(resolution):
    with pytest.raises(DataError) as info:
        render(
            np.zeros((1, 1, 2)),
            extent=1.0,
            body_radius=0.1,
            colours=[(1, 1, 1)],
            resolution=resolution,
        )
    message = str(info.value)
    assert "resolution" in message and repr(resolution) in message and "(32, 64)" in message


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"extent": 0.0}, ["extent=0.0", "> 0"]),
        ({"body_radius": -0.1}, ["body_radius=-0.1", "> 0"]),
        ({"softness": 0}, ["softness=0", "> 0"]),
        ({"colours": [(1, 1, 1), (0, 0, 0)]}, ["colours=", "shape (1, 3)"]),
        ({"background": (0, 0, 2)}, ["background=(0, 0, 2)", "[0, 1]"]),
    ],
)
def test_bad_render_arguments(kwargs, words):
    arguments = {"extent": 1.0, "body_radius": 0.1, "colours": [(1, 1, 1)], **kwargs}
    with pytest.raises(DataError) as info:
        render(np.zeros((1, 1, 2)), **arguments)
    for word in [*words, "allowed"]:
        assert word in str(info.value), (word, str(info.value))
