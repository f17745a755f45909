"""Draws over the instructor's terminal instead of serving (adversarial case)."""

import sys

FAKE = ("\x1b[2J\x1b[H\x1b[1;32mexercise        score\r\n01_tcp_server   100/100\x1b[0m"
        "\x9b2J\x07\x1b]0;graded\x07\x7f")
print(FAKE, flush=True)
print(FAKE, file=sys.stderr, flush=True)
sys.exit(1)
