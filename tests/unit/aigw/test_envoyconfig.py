"""``aigw run``'s Envoy config copies the credential from the ext_proc's metadata on its routes, and never
logs it."""

from __future__ import annotations

from pathlib import Path

from aigw.standalone import envoyconfig
from aigw.standalone.envoyconfig import Address, ExtProcSettings, GatewayPorts, HeaderRoute
from api import headers as hdr
from controller.extensionserver.options import ExtensionServerOptions


def test_every_route_copies_the_credential_headers_from_the_metadata() -> None:
    routes = [HeaderRoute(value="b.ns", cluster="b", timeout_seconds=5)]
    (config,) = envoyconfig.rds_document(routes, pool_timeout_seconds=30)["resources"]
    (vh,) = config["virtual_hosts"]
    forwarding = [r for r in vh["routes"] if "route" in r]
    assert [r["name"] for r in forwarding] == ["b.ns", hdr.ORIGINAL_DST_CLUSTER]
    for route in forwarding:
        added = {o["header"]["key"]: o["header"]["value"] for o in route["request_headers_to_add"]}
        assert added == {h: hdr.credential_header_value(h) for h in hdr.CREDENTIAL_HEADERS}


def test_the_ext_proc_may_write_the_credential_namespace_and_the_access_log_never_reads_it(
    tmp_path: Path,
) -> None:
    a = Address(host="127.0.0.1", port=1)
    boot = envoyconfig.bootstrap(
        ports=GatewayPorts(listener=a, admin=a, extproc=a),
        xds_dir=tmp_path,
        original_dst_cluster=envoyconfig.original_destination_cluster(options=ExtensionServerOptions()),
        extproc=ExtProcSettings(),
    )
    hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    filters = {f["name"]: f["typed_config"] for f in hcm["http_filters"]}
    ext_proc = filters["envoy.filters.http.ext_proc"]
    assert (
        hdr.CREDENTIAL_METADATA_NAMESPACE in ext_proc["metadata_options"]["receiving_namespaces"]["untyped"]
    )
    log_format = hcm["access_log"][0]["typed_config"]["log_format"]["text_format_source"]["inline_string"]
    assert "DYNAMIC_METADATA(io.envoy.ai_gateway)" in log_format  # the costs, a namespace of their own
    assert hdr.CREDENTIAL_METADATA_NAMESPACE not in log_format and "CEL(" not in log_format
