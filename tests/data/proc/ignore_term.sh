#!/bin/sh
# Ignore SIGTERM (sleep inherits that); only SIGKILL stops us.
trap '' TERM
echo ready
sleep 30
