"""How a batch shared by several delivery processes is cut into parts (``delivery.parts``)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailspool.delivery.parts import LARGEST_PART, part_size


@pytest.mark.parametrize(
    ("count", "above", "among", "size"),
    [
        (5000, 1000, 2, 500),  # ten parts: five for each process, not 3 and 2 of 1000
        (1001, 1000, 2, 251),  # four parts, two each
        (5000, 1000, 4, 417),  # twelve parts, three each
        (2100, 1000, 2, 350),
        (100, 30, 1, 30),  # alone (a test's own split): never over ``above``
        (1000, 1000, 2, None),  # not above: sent whole by one process
        (5000, None, 2, None),  # not shared: never cut
    ],
)
def test_the_part_size_of_a_batch(count: int, above: int | None, among: int, size: int) -> None:
    assert part_size(count, above, among) == size


@given(
    count=st.integers(1, 200_000),
    above=st.integers(1, 5_000),
    among=st.integers(1, 16),
)
def test_parts_are_bounded_and_their_count_is_a_multiple_of_the_processes(
    count: int, above: int, among: int
) -> None:
    size = part_size(count, above, among)
    if count <= above:
        assert size is None
        return
    assert size is not None
    assert 1 <= size <= min(above, LARGEST_PART)
    parts = math.ceil(count / size)
    if size < above and count >= 2 * among * among:  # enough e-mails for equal turns
        assert parts % among == 0
