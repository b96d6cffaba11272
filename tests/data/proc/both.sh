#!/bin/sh
# One line on stdout, one on stderr, in that order.
echo out
echo err >&2
