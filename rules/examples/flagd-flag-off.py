#!/usr/bin/python3
"""Turn an OpenFeature flagd flag off in a flagd flag file.

    rules/examples/flagd-flag-off.py FILE FLAG

flagd (`flagd start --uri file:FILE`) watches FILE. The flag's
defaultVariant becomes its "off" variant (or the variant whose value is
false) and its targeting is removed, so no rule or fractional rollout can
still serve the new code path. The file is replaced atomically (a temporary
file in the same directory, then rename), every other flag and key is kept,
and a second run changes nothing. Exit 2 for a bad argument, 4 when the flag
or an off variant is missing.
"""
import json
import os
import re
import sys
import tempfile


def main():
    if len(sys.argv) != 3:
        print("usage: flagd-flag-off.py FILE FLAG", file=sys.stderr)
        return 2
    path, flag = sys.argv[1], sys.argv[2]
    if not re.fullmatch(r"[A-Za-z0-9._-]+", flag) or flag.startswith("-"):
        print("flagd-flag-off.py: refusing flag name %r" % flag, file=sys.stderr)
        return 2
    with open(path) as f:
        doc = json.load(f)
    flags = doc.get("flags")
    if not isinstance(flags, dict) or flag not in flags:
        print("flagd-flag-off.py: %s has no flag %r" % (path, flag), file=sys.stderr)
        return 4
    spec = flags[flag]
    variants = spec.get("variants") or {}
    off = "off" if "off" in variants else next((k for k, v in variants.items() if v is False), None)
    if off is None:
        print("flagd-flag-off.py: flag %r has no 'off' variant and none that is false" % flag,
              file=sys.stderr)
        return 4
    if spec.get("defaultVariant") == off and "targeting" not in spec \
            and spec.get("state") == "ENABLED":
        print("flagd-flag-off.py: %s is already off" % flag)
        return 0
    spec["state"] = "ENABLED"
    spec["defaultVariant"] = off
    spec.pop("targeting", None)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".flags-", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, os.stat(path).st_mode & 0o777)
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    print("flagd-flag-off.py: %s now serves %r (%s)" % (flag, off, json.dumps(variants[off])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
