"""A manager process for the leader election tests: prints ``LEADING <identity>`` once it leads.

Usage: ``python -m tests.integration.runtime.leader_process KUBECONFIG NAMESPACE LEASE IDENTITY``.
Exits 0 after SIGTERM (releasing the Lease), 1 if leadership is lost.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from kubernetes_asyncio import client, config

from controller.runtime import LeaderElectionConfig, Manager


async def main(kubeconfig: str, namespace: str, lease: str, identity: str) -> int:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    async with client.ApiClient(cfg) as api:
        election = LeaderElectionConfig(name=lease, namespace=namespace, identity=identity)
        mgr = Manager(api_client=api, leader_election=election, health_port=None)

        async def announce() -> None:
            print(f"LEADING {identity}", flush=True)
            await asyncio.Event().wait()

        mgr.add_runnable(announce)
        print(f"STARTED {identity}", flush=True)
        return await mgr.serve()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    sys.exit(asyncio.run(main(*sys.argv[1:5])))
