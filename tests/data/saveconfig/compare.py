#!/usr/bin/env python3
# Compares two saveconfig.json files on what both targetcli-fb and devemu write: storage objects (with every
# attribute) and targets (TPGs, LUNs, ACLs, CHAP, mapped LUNs, portals). Keys only rtslib writes (LUN aliases,
# ALUA group names, ACL session attributes, TPG parameters, loopback nexus, which rtslib does not save) are left out.
import json, sys

DROP_SO = {"alua_tpgs"}
DROP_LUN = {"alias", "alua_tg_pt_gp_name"}
DROP_ACL = {"attributes", "tcq_depth", "tag"}
DROP_MAPPED = {"alias"}
DROP_TPG = {"attributes", "parameters", "nexus"}

def norm(d):
    sos = sorted(({k: v for k, v in so.items() if k not in DROP_SO} for so in d["storage_objects"]), key=lambda s: s["name"])
    tgts = []
    for t in sorted(d["targets"], key=lambda t: t["wwn"]):
        tpgs = []
        for tp in t["tpgs"]:
            tp = {k: v for k, v in tp.items() if k not in DROP_TPG}
            tp["luns"] = sorted(({k: v for k, v in l.items() if k not in DROP_LUN} for l in tp["luns"]), key=lambda l: l["index"])
            acls = []
            for a in tp["node_acls"]:
                a = {k: v for k, v in a.items() if k not in DROP_ACL}
                a["mapped_luns"] = sorted(({k: v for k, v in m.items() if k not in DROP_MAPPED} for m in a["mapped_luns"]), key=lambda m: m["index"])
                acls.append(a)
            tp["node_acls"] = sorted(acls, key=lambda a: a["node_wwn"])
            tpgs.append(tp)
        tgts.append({"fabric": t["fabric"], "wwn": t["wwn"], "tpgs": tpgs})
    return {"storage_objects": sos, "targets": tgts}

a, b = (norm(json.load(open(p))) for p in sys.argv[1:3])
if a == b:
    print("saveconfig round trip: identical on", sum(len(s) for s in a["storage_objects"]), "storage-object fields")
    sys.exit(0)
def walk(x, y, path="$"):
    if type(x) != type(y): print(f"{path}: {x!r} != {y!r}"); return
    if isinstance(x, dict):
        for k in sorted(set(x) | set(y)):
            if k not in x or k not in y: print(f"{path}.{k}: only in {'first' if k in x else 'second'}"); continue
            walk(x[k], y[k], f"{path}.{k}")
    elif isinstance(x, list):
        if len(x) != len(y): print(f"{path}: {len(x)} vs {len(y)} entries")
        for i, (p, q) in enumerate(zip(x, y)): walk(p, q, f"{path}[{i}]")
    elif x != y: print(f"{path}: {x!r} != {y!r}")
walk(a, b)
sys.exit(1)
