"""Print the NFS ρ table of the model card from the two validation sweeps (v6, ρ = 0.1; ρ = 1)."""
import json
import sys


def kind(k: dict, name: str) -> str:
    return f"{k[name]['matched']}/{k[name]['references']}"


rows = [("ρ = 0.1 (v6, shipped)", sys.argv[1]), ("ρ = 1", sys.argv[2])]
print("| NFS | θ | F1 | precision | recall | content-exact F1 | right in content | utterances "
      "| instr. | confirm. | answers |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for name, path in rows:
    for theta, v in json.load(open(path))["thetas"].items():
        o = v["overall"]
        k = o["per_kind"]
        print(f"| {name} | {theta} | {o['f1']:.3f} | {o['precision']:.3f} | {o['recall']:.3f} | "
              f"{o['f1_content']:.3f} | {o['content_right_share']:.3f} | {v['utterances']} | "
              f"{kind(k, 'instruction')} | {kind(k, 'confirmation')} | {kind(k, 'answer')} |")
