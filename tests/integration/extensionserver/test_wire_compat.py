"""Our compiled API against Envoy Gateway v1.9.0's own ``proto/extension/*.proto``, field by field.

The Envoy Gateway module comes from the Go module proxy (``go mod download``, the same call ``make envtest``
makes for the CRDs; a no-op when cached). Its two ``.proto`` files are compiled with the same protoc and the
same xds-protos descriptors as ours, then every message and RPC of package ``envoygateway.extension`` is
compared: names, numbers, labels, types. This is the wire contract; comments and file layout are free.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc  # type: ignore[import-untyped]

from controller.extensionserver import codegen
from controller.extensionserver._generated import envoygateway_extension_pb2 as pb

EG_MODULE = "github.com/envoyproxy/gateway@v1.9.0"
EG_PROTOS = ("proto/extension/context.proto", "proto/extension/service.proto")
PACKAGE = "envoygateway.extension"


def _envoy_gateway_module(workdir: Path) -> Path:
    go = shutil.which("go")
    assert go, "Go is needed to fetch Envoy Gateway's .proto files from the module proxy (see hack/)"
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    proc = subprocess.run(
        [go, "mod", "download", "-json", EG_MODULE],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"go mod download {EG_MODULE} failed:\n{proc.stdout}\n{proc.stderr}"
    return Path(json.loads(proc.stdout)["Dir"])


def _compile_envoy_gateway(module: Path, workdir: Path) -> descriptor_pb2.FileDescriptorSet:
    imports = [i for name in EG_PROTOS for i in codegen.imported_files((module / name).read_text())]
    envoy_imports = [i for i in imports if i.startswith("envoy/")]
    deps = workdir / "deps.binpb"
    deps.write_bytes(codegen.dependency_descriptor_set(envoy_imports).SerializeToString())
    out = workdir / "eg.binpb"
    rc = protoc.main(
        ["protoc", f"-I{module}", f"--descriptor_set_in={deps}", f"--descriptor_set_out={out}", *EG_PROTOS]
    )
    assert rc == 0, "protoc could not compile Envoy Gateway's .proto files"
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _shapes(files: list[descriptor_pb2.FileDescriptorProto]) -> tuple[dict[str, object], dict[str, object]]:
    """``(messages, rpcs)`` of package envoygateway.extension, reduced to what is on the wire."""
    messages: dict[str, object] = {}
    rpcs: dict[str, object] = {}
    for f in files:
        if f.package != PACKAGE:
            continue
        for m in f.message_type:
            messages[m.name] = sorted((x.number, x.name, x.label, x.type, x.type_name) for x in m.field)
        for service in f.service:
            for method in service.method:
                rpcs[f"{service.name}/{method.name}"] = (
                    method.input_type,
                    method.output_type,
                    method.client_streaming,
                    method.server_streaming,
                )
    return messages, rpcs


def test_same_wire_contract_as_envoy_gateway_v1_9_0(tmp_path: Path) -> None:
    module = _envoy_gateway_module(tmp_path)
    theirs = _shapes(list(_compile_envoy_gateway(module, tmp_path).file))
    ours_file = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(ours_file)
    ours = _shapes([ours_file])

    their_messages, their_rpcs = theirs
    our_messages, our_rpcs = ours
    assert len(their_rpcs) == 6 and len(their_messages) == 19  # sanity: we compiled the real thing
    assert our_rpcs == their_rpcs
    assert our_messages == their_messages
