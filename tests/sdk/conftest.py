import pytest

import gateway
import mock_upstream


@pytest.fixture(scope="session")
def upstream():
    server = mock_upstream.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture(scope="session")
def gw(upstream):
    g = gateway.Gateway(upstream, upstream)
    yield g
    g.stop()
