#!/usr/bin/env python3
"""ONNX Runtime's float and int8 ResNet-18, the graph of `examples/common/resnet18.rs`.

Built with `onnx.helper` at 224x224 with BatchNorm folded into the convolutions (as exporters
do), random He-initialised weights; int8 by ORT's own static quantization
(`quantize_static`, per-channel weights, QDQ format, calibration on random inputs). Prints
one JSON line per (precision, batch): the median milliseconds of a forward pass, with the
same number of intra-op threads as ours (2 unless `--threads`).

    pip install onnxruntime onnx
    python3 benches/ort_resnet18.py --batches 1,8 --runs 10
"""

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)


def build_resnet18(rng):
    nodes, inits = [], []
    counter = [0]

    def name(prefix):
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    def conv(x, c_in, c_out, kernel, stride):
        w = name("w")
        b = name("b")
        std = np.sqrt(2.0 / (c_in * kernel * kernel))
        inits.append(
            numpy_helper.from_array(
                (rng.standard_normal((c_out, c_in, kernel, kernel)) * std).astype(np.float32), w
            )
        )
        inits.append(numpy_helper.from_array((rng.standard_normal(c_out) * 0.01).astype(np.float32), b))
        y = name("conv")
        pad = kernel // 2
        nodes.append(
            helper.make_node(
                "Conv",
                [x, w, b],
                [y],
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[pad, pad, pad, pad],
            )
        )
        return y

    def relu(x):
        y = name("relu")
        nodes.append(helper.make_node("Relu", [x], [y]))
        return y

    def block(x, c_in, c_out, stride):
        y = relu(conv(x, c_in, c_out, 3, stride))
        y = conv(y, c_out, c_out, 3, 1)
        shortcut = conv(x, c_in, c_out, 1, stride) if (stride != 1 or c_in != c_out) else x
        s = name("add")
        nodes.append(helper.make_node("Add", [y, shortcut], [s]))
        return relu(s)

    x = relu(conv("images", 3, 64, 7, 2))
    p = name("pool")
    nodes.append(helper.make_node("MaxPool", [x], [p], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    x, c_in = p, 64
    for stage, c_out in enumerate([64, 128, 256, 512]):
        x = block(x, c_in, c_out, 1 if stage == 0 else 2)
        x = block(x, c_out, c_out, 1)
        c_in = c_out
    g = name("gap")
    nodes.append(helper.make_node("GlobalAveragePool", [x], [g]))
    f = name("flat")
    nodes.append(helper.make_node("Flatten", [g], [f], axis=1))
    inits.append(numpy_helper.from_array((rng.standard_normal((1000, 512)) * 0.03).astype(np.float32), "fc_w"))
    inits.append(numpy_helper.from_array(np.zeros(1000, np.float32), "fc_b"))
    nodes.append(helper.make_node("Gemm", [f, "fc_w", "fc_b"], ["logits"], transB=1))
    graph = helper.make_graph(
        nodes,
        "resnet18",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


class RandomImages(CalibrationDataReader):
    def __init__(self, rng, count):
        self.items = iter(
            [{"images": rng.standard_normal((1, 3, 224, 224)).astype(np.float32)} for _ in range(count)]
        )

    def get_next(self):
        return next(self.items, None)


def session(path, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def median_ms(sess, images, runs):
    sess.run(None, {"images": images})  # warm up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, {"images": images})
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calibration", type=int, default=16)
    parser.add_argument("--workdir", default=None, help="keep the .onnx files here")
    args = parser.parse_args()
    rng = np.random.default_rng(18)
    workdir = args.workdir or tempfile.mkdtemp(prefix="ort_resnet18_")
    os.makedirs(workdir, exist_ok=True)
    float_path = os.path.join(workdir, "resnet18_f32.onnx")
    int8_path = os.path.join(workdir, "resnet18_int8.onnx")
    if not os.path.exists(int8_path):
        onnx.save(build_resnet18(rng), float_path)
        quantize_static(
            float_path,
            int8_path,
            RandomImages(rng, args.calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    sessions = {"f32": session(float_path, args.threads), "int8": session(int8_path, args.threads)}
    for batch in [int(b) for b in args.batches.split(",")]:
        images = rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)
        for precision, sess in sessions.items():
            ms = median_ms(sess, images, args.runs)
            print(
                json.dumps(
                    {
                        "engine": "onnxruntime " + ort.__version__,
                        "precision": precision,
                        "batch": batch,
                        "threads": args.threads,
                        "median_ms": round(ms, 3),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
