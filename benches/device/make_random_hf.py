"""Random weights in the shape of gemma-3-270m (config.json beside): speed does not depend on the
values, and the real checkpoint (253 MB) cannot travel to the device machine."""
import json, sys
import numpy as np
d = sys.argv[1]
c = json.load(open(f"{d}/config.json"))
h, f, hd = c["hidden_size"], c["intermediate_size"], c["head_dim"]
q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
rng = np.random.default_rng(0)
w = lambda *s: (rng.standard_normal(s, dtype=np.float32) * 0.02)
t = {"model.embed_tokens.weight": w(c["vocab_size"], h), "model.norm.weight": w(h)}
for i in range(c["num_hidden_layers"]):
    p = f"model.layers.{i}."
    for n in ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"]:
        t[p + n + ".weight"] = w(h)
    t[p + "self_attn.q_proj.weight"] = w(q, h)
    t[p + "self_attn.k_proj.weight"] = w(kv, h)
    t[p + "self_attn.v_proj.weight"] = w(kv, h)
    t[p + "self_attn.o_proj.weight"] = w(h, q)
    t[p + "self_attn.q_norm.weight"] = w(hd)
    t[p + "self_attn.k_norm.weight"] = w(hd)
    t[p + "mlp.gate_proj.weight"] = w(f, h)
    t[p + "mlp.up_proj.weight"] = w(f, h)
    t[p + "mlp.down_proj.weight"] = w(h, f)
header, offset = {}, 0
for name, v in t.items():
    header[name] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [offset, offset + v.nbytes]}
    offset += v.nbytes
blob = json.dumps(header).encode()
blob += b" " * (-len(blob) % 8)
with open(f"{d}/model.safetensors", "wb") as out:
    out.write(len(blob).to_bytes(8, "little") + blob)
    for v in t.values():
        out.write(v.tobytes())
print("wrote", sum(v.size for v in t.values()), "parameters")
