"""Bootstrap steps of tools/openstack that talk to the running APIs (run in .openstack/venv).

Usage: ``python nfo_os_bootstrap.py identity|resources|ready`` with a JSON document on stdin:
``auth_url`` (keystone, ending in /v3), ``admin_password``, ``service_password`` and, for
``identity``, ``endpoints`` (service type -> URL). ``resources`` prints the names it
created as one JSON line.

- identity: the ``service`` project and role, one user per service (roles ``admin`` and
  ``service`` in project ``service``; keystonemiddleware requires the ``service`` role of
  whoever sends a service token), and the services with their public/internal/admin
  endpoints in RegionOne. Runs with a system-scoped admin token.
- resources: the image ``cirros`` (a few KB of bytes, raw), the flavor ``m1.tiny``, the
  network ``private`` with a subnet, and quotas of the admin project raised well above 200
  instances/cores/ports. Runs with the admin project's token.
- ready: nova-compute is up, placement has its resource provider, and (with ``probe``) a
  server boots to ACTIVE and is deleted again. Exit status 3 when not yet ready.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import openstack
from openstack import exceptions

REGION = "RegionOne"
SERVICES = {
    # type: (service name, user name)
    "placement": ("placement", "placement"),
    "image": ("glance", "glance"),
    "compute": ("nova", "nova"),
    "network": ("neutron", "neutron"),
}
IMAGE, FLAVOR, NETWORK = "cirros", "m1.tiny", "private"


def connect(facts: dict[str, Any], *, system: bool) -> openstack.connection.Connection:
    auth: dict[str, Any] = {
        "auth_url": facts["auth_url"],
        "username": "admin",
        "password": facts["admin_password"],
        "user_domain_name": "Default",
    }
    if system:
        auth["system_scope"] = "all"
    else:
        auth["project_name"] = "admin"
        auth["project_domain_name"] = "Default"
    return openstack.connection.Connection(
        auth=auth, auth_type="password", region_name=REGION, interface="public"
    )


def identity(facts: dict[str, Any]) -> dict[str, Any]:
    conn = connect(facts, system=True)
    ident = conn.identity
    domain = ident.find_domain("default", ignore_missing=False)
    project = ident.find_project("service", domain_id=domain.id) or ident.create_project(
        name="service", domain_id=domain.id, description="OpenStack service users"
    )
    admin_role = ident.find_role("admin", ignore_missing=False)
    service_role = ident.find_role("service") or ident.create_role(name="service")
    for stype, (sname, uname) in SERVICES.items():
        user = ident.find_user(uname, domain_id=domain.id) or ident.create_user(
            name=uname, password=facts["service_password"], domain_id=domain.id
        )
        for role in (admin_role, service_role):
            ident.assign_project_role_to_user(project, user, role)
        service = ident.find_service(sname) or ident.create_service(name=sname, type=stype)
        url = facts["endpoints"][stype]
        have = {e.interface for e in ident.endpoints(service_id=service.id)}
        for interface in ("public", "internal", "admin"):
            if interface not in have:
                ident.create_endpoint(
                    service_id=service.id, interface=interface, url=url, region_id=REGION
                )
    return {}


def resources(facts: dict[str, Any]) -> dict[str, Any]:
    conn = connect(facts, system=False)
    project_id = conn.current_project_id

    if conn.image.find_image(IMAGE) is None:
        # A few KB of recognisable bytes: the fake compute driver never reads them.
        data = (b"nfo fake cirros image\n" * 256)[:4096]
        conn.image.create_image(
            name=IMAGE,
            data=data,
            disk_format="raw",
            container_format="bare",
            visibility="public",
            wait=True,
            timeout=120,
        )

    if conn.compute.find_flavor(FLAVOR) is None:
        conn.compute.create_flavor(name=FLAVOR, vcpus=1, ram=512, disk=1, is_public=True)

    net = conn.network.find_network(NETWORK)
    if net is None:
        net = conn.network.create_network(name=NETWORK)
    if not list(conn.network.subnets(network_id=net.id)):
        conn.network.create_subnet(
            name=f"{NETWORK}-subnet",
            network_id=net.id,
            ip_version=4,
            cidr="10.20.0.0/16",
            enable_dhcp=False,
        )

    conn.compute.update_quota_set(
        project_id, instances=1000, cores=2000, ram=2048000, key_pairs=1000
    )
    conn.network.update_quota(project_id, ports=5000, networks=1000, subnets=1000)
    return {"image": IMAGE, "flavor": FLAVOR, "network": NETWORK}


class NotReady(Exception):
    pass


def ready(facts: dict[str, Any]) -> dict[str, Any]:
    """One check that a server can be scheduled; raises NotReady (the caller retries)."""
    conn = connect(facts, system=False)
    computes = [s for s in conn.compute.services(binary="nova-compute") if s.state == "up"]
    if not computes:
        raise NotReady("no nova-compute service is up")
    if not list(conn.placement.resource_providers()):
        raise NotReady("no resource provider in placement")
    if not list(conn.compute.hypervisors()):
        raise NotReady("no hypervisor yet")
    if not facts.get("probe"):
        return {}
    # The real proof: boot a server on the fake driver and delete it again.
    image = conn.image.find_image(IMAGE, ignore_missing=False)
    flavor = conn.compute.find_flavor(FLAVOR, ignore_missing=False)
    net = conn.network.find_network(NETWORK, ignore_missing=False)
    server = conn.compute.create_server(
        name="nfo-os-probe", image_id=image.id, flavor_id=flavor.id, networks=[{"uuid": net.id}]
    )
    try:
        server = conn.compute.wait_for_server(server, wait=120, interval=0.5)
    except exceptions.ResourceFailure as e:
        raise NotReady(f"probe server failed: {e}") from e
    finally:
        conn.compute.delete_server(server, ignore_missing=True)
        conn.compute.wait_for_delete(server, wait=120, interval=0.5)
    return {}


def main() -> int:
    step = sys.argv[1]
    facts = json.load(sys.stdin)
    deadline = time.monotonic() + 120
    while True:
        try:
            out = {"identity": identity, "resources": resources, "ready": ready}[step](facts)
            break
        except NotReady as e:
            print(f"nfo_os_bootstrap {step}: not ready: {e}", file=sys.stderr)
            return 3
        except (exceptions.HttpException, exceptions.SDKException) as e:
            # A service that answered its root URL may still be finishing its start.
            if step == "ready" or time.monotonic() > deadline:
                raise
            print(f"nfo_os_bootstrap {step}: retrying after: {e}", file=sys.stderr)
            time.sleep(2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
