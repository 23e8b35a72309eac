"""Smoke tests of the local OpenStack cloud itself, through openstacksdk."""

from __future__ import annotations

import uuid

import pytest

from openstack import exceptions
from tests.openstack.cloud import OpenStackCloud


def test_boot_and_delete_a_server(openstack_cloud: OpenStackCloud) -> None:
    conn = openstack_cloud.connection()
    try:
        image = conn.image.find_image(openstack_cloud.image, ignore_missing=False)
        flavor = conn.compute.find_flavor(openstack_cloud.flavor, ignore_missing=False)
        net = conn.network.find_network(openstack_cloud.network, ignore_missing=False)
        server = conn.compute.create_server(
            name=f"smoke-{uuid.uuid4().hex[:8]}",
            image_id=image.id,
            flavor_id=flavor.id,
            networks=[{"uuid": net.id}],
        )
        try:
            server = conn.compute.wait_for_server(server, status="ACTIVE", wait=120, interval=1)
            assert server.status == "ACTIVE"
            ports = list(conn.network.ports(device_id=server.id))
            assert [p.network_id for p in ports] == [net.id]
            assert ports[0].binding_vif_type != "binding_failed"
        finally:
            conn.compute.delete_server(server, ignore_missing=True)
        conn.compute.wait_for_delete(server, wait=120, interval=1)
        with pytest.raises(exceptions.NotFoundException):
            conn.compute.get_server(server.id)
    finally:
        conn.close()


def test_missing_image_is_a_clear_error(openstack_cloud: OpenStackCloud) -> None:
    conn = openstack_cloud.connection()
    missing = str(uuid.uuid4())
    try:
        flavor = conn.compute.find_flavor(openstack_cloud.flavor, ignore_missing=False)
        with pytest.raises(exceptions.BadRequestException) as err:
            conn.compute.create_server(
                name="no-image", image_id=missing, flavor_id=flavor.id, networks="none"
            )
        # Nova's answer: 400 "Can not find requested image".
        assert err.value.status_code == 400
        message = str(err.value).lower()
        assert "image" in message and ("not find" in message or "not be found" in message)
        assert not list(conn.compute.servers(name="no-image"))
    finally:
        conn.close()
