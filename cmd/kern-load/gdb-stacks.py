# Goroutine stack sizes of a running Go process, grouped by the function each
# goroutine started in (see README.md, "Where a stream's memory goes"):
#   gdb -q -batch -p <pid> -ex 'source cmd/kern-load/gdb-stacks.py'
# It stops the process while it reads runtime.allgs.
import gdb, collections

def sym(pc):
    try:
        b = gdb.block_for_pc(int(pc))
        while b and not b.function:
            b = b.superblock
        return b.function.name if b else hex(int(pc))
    except Exception:
        return hex(int(pc))

allgs = gdb.parse_and_eval("'runtime.allgs'")
sizes = collections.defaultdict(collections.Counter)
for i in range(int(allgs['len'])):
    g = allgs['array'][i]
    if int(g['atomicstatus']['value']) == 6:  # _Gdead
        continue
    sizes[sym(g['startpc'])][int(g['stack']['hi']) - int(g['stack']['lo'])] += 1
for fn, c in sorted(sizes.items(), key=lambda kv: -sum(kv[1].values())):
    n = sum(c.values())
    if n >= 5:
        print("%6d  %-70s %s  avg %.1f KiB" % (n, fn[:70], dict(sorted(c.items())), sum(s * k for s, k in c.items()) / n / 1024))
