"""How a batch shared by several delivery processes is cut into parts.

A process that claims a large batch keeps its first part and hands the others on as
continuation batches, which every process claims as it comes free. With parts of a
fixed size, a count of parts that is not a multiple of the processes leaves one process
sending the last part alone. 5000 e-mails in parts of 1000 over two processes ended
with one of them idle for a whole part; on loopback to Postfix's ``smtp-sink``, ten
parts of 500 drained the same batch 1.12x as fast (medians of four alternating runs).
So the parts are equal, as many as a multiple of the processes, and no larger
than ``LARGEST_PART``: equally fast processes take as many each and end together, and
a slower one (the SMTP server on its core) leaves a small part at most to the others.
"""

from __future__ import annotations

import math

__all__ = ["LARGEST_PART", "part_size"]

#: The most e-mails in one part of a batch split for several processes.
LARGEST_PART = 500


def part_size(count: int, above: int | None, among: int) -> int | None:
    """The size of the parts a batch of ``count`` e-mails still to send is cut into
    (the last may be smaller), or None to send it whole: cut when it has more than
    ``above``, into a multiple of ``among`` (the processes) equal parts of at most
    ``LARGEST_PART``, and never larger than ``above``."""
    if above is None or count <= above:
        return None
    among = max(among, 1)
    parts = among * math.ceil(count / (among * LARGEST_PART))
    return max(1, min(above, math.ceil(count / parts)))
