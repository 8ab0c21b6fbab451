"""Reports which non-stdlib modules the runtime process has loaded."""

import sys


def modules(payload):
    foreign = sorted(
        name for name in sys.modules
        if name.split(".")[0] not in sys.stdlib_module_names and name != "__main__"
    )
    return {"foreign": foreign, "no_site": sys.flags.no_site, "path": sys.path}
