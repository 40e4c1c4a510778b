"""herd's pytest worker plugin.

Load it with ``-p herd_pytest.plugin``. Without ``HERD_ENDPOINT`` in the environment it only
registers the ``herd_group`` marker and the ``herd_appliance`` fixture; under herd it takes over
pytest's test loop and speaks herd's protocol v1 (JSON over ZeroMQ) with the coordinator.
"""

__version__ = "0.1.0"

#: The protocol version this plugin speaks.
PROTOCOL_VERSION = 1
