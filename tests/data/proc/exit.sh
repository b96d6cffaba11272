#!/bin/sh
# Exit with the code given as $1.
exit "$1"
