"""The chain node's home files as a fresh node writes them on first start (CometBFT 0.38 config.toml,
Cosmos SDK app.toml and client.toml, node_key.json): same sections, keys and defaults, commented.

One module on purpose (~500 lines): mostly the text of the chain's config files as the node
writes them (templates), not logic.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets

COMETBFT_VERSION = "0.38.17"


def config_toml(moniker: str) -> str:
    return f'''# CometBFT node configuration (TOML).
# Paths are either absolute or relative to the node's home directory.

#######################################################################
###                   Main Base Config Options                      ###
#######################################################################

# Version of CometBFT that wrote this file
version = "{COMETBFT_VERSION}"

# Address of the ABCI application, or the name of a built-in one
proxy_app = "tcp://127.0.0.1:26658"

# A custom human readable name for this node
moniker = "{moniker}"

# Database backend: goleveldb | cleveldb | boltdb | rocksdb | badgerdb | pebbledb
db_backend = "goleveldb"

# Database directory
db_dir = "data"

# Output level for logging, including package level options
log_level = "info"

# Output format: 'plain' (colored text) or 'json'
log_format = "plain"

##### additional base config options #####

# Genesis document (JSON) of the chain
genesis_file = "config/genesis.json"

# Private validator key (used when no remote signer is configured)
priv_validator_key_file = "config/priv_validator_key.json"

# Last sign state of the private validator
priv_validator_state_file = "data/priv_validator_state.json"

# Address to listen on for a remote signer (tmkms); empty = use the local key file
priv_validator_laddr = ""

# Key that identifies this node on the p2p network
node_key_file = "config/node_key.json"

# How the node talks to the ABCI application: socket | grpc
abci = "socket"

# Ask the ABCI application to filter new peers
filter_peers = false


#######################################################################
###                 Advanced Configuration Options                  ###
#######################################################################

#######################################################
###       RPC Server Configuration Options          ###
#######################################################
[rpc]

# TCP or UNIX socket address of the RPC server
laddr = "tcp://127.0.0.1:26657"

# Origins a cross-domain request may come from ("*" = any)
cors_allowed_origins = []

# Methods a cross-domain request may use
cors_allowed_methods = ["HEAD", "GET", "POST", ]

# Non-simple headers a cross-domain request may use
cors_allowed_headers = ["Origin", "Accept", "Content-Type", "X-Requested-With", "X-Server-Time", ]

# Address of the (deprecated) gRPC server; empty = disabled
grpc_laddr = ""

# Cap on simultaneous gRPC connections (0 = unlimited)
grpc_max_open_connections = 900

# Enable the unsafe RPC commands (dial_seeds, dial_peers, ...)
unsafe = false

# Cap on simultaneous RPC connections, websockets included (0 = unlimited)
max_open_connections = 900

# Cap on clients subscribed to events
max_subscription_clients = 100

# Cap on subscriptions per client
max_subscriptions_per_client = 5

# Events buffered per subscription before it is dropped
experimental_subscription_buffer_size = 200

# Events buffered per websocket client
experimental_websocket_write_buffer_size = 200

# Close the websocket of a client that cannot keep up
experimental_close_on_slow_client = false

# How long broadcast_tx_commit waits for the block
timeout_broadcast_tx_commit = "10s"

# Cap on requests in one JSON-RPC batch (0 = unlimited)
max_request_batch_size = 10

# Cap on a request body, in bytes
max_body_bytes = 1000000

# Cap on request headers, in bytes
max_header_bytes = 1048576

# TLS certificate and key (both empty = plain HTTP)
tls_cert_file = ""
tls_key_file = ""

# pprof listen address (empty = disabled)
pprof_laddr = "localhost:6060"

#######################################################
###           P2P Configuration Options             ###
#######################################################
[p2p]

# Address to listen for incoming connections
laddr = "tcp://0.0.0.0:26656"

# Address to advertise to peers (host:port); empty = guess
external_address = ""

# Comma separated list of seed nodes to connect to
seeds = ""

# Comma separated list of nodes to keep persistent connections to
persistent_peers = ""

# Address book file
addr_book_file = "config/addrbook.json"

# Keep only routable addresses in the address book
addr_book_strict = true

# Cap on inbound peers
max_num_inbound_peers = 40

# Cap on outbound peers
max_num_outbound_peers = 10

# Peer ids that the inbound/outbound caps do not apply to
unconditional_peer_ids = ""

# Longest pause between redials of a persistent peer
persistent_peers_max_dial_period = "0s"

# How often connections flush their send buffers
flush_throttle_timeout = "100ms"

# Largest payload of one p2p message, in bytes
max_packet_msg_payload_size = 1024

# Send and receive rates, in bytes per second
send_rate = 5120000
recv_rate = 5120000

# Peer exchange reactor
pex = true

# Seed mode: crawl the network and hand out addresses
seed_mode = false

# Peer ids never gossiped to others
private_peer_ids = ""

# Accept several peers from one IP address
allow_duplicate_ip = false

# Peer connection timeouts
handshake_timeout = "20s"
dial_timeout = "3s"

#######################################################
###          Mempool Configuration Option          ###
#######################################################
[mempool]

# Mempool implementation: flood | nop
type = "flood"

# Re-check transactions after every block
recheck = true
recheck_timeout = "1s"

# Gossip transactions to peers
broadcast = true

# Mempool write-ahead log directory (empty = none)
wal_dir = ""

# Cap on transactions in the mempool
size = 5000

# Cap on the total size of transactions in the mempool, in bytes
max_txs_bytes = 1073741824

# Size of the cache of seen transactions
cache_size = 10000

# Keep transactions that failed CheckTx in the cache
keep-invalid-txs-in-cache = false

# Cap on the size of one transaction, in bytes
max_tx_bytes = 1048576

# Unused, kept for compatibility
max_batch_bytes = 0

# Gossip fan-out limits (0 = no limit)
experimental_max_gossip_connections_to_persistent_peers = 0
experimental_max_gossip_connections_to_non_persistent_peers = 0

#######################################################
###         State Sync Configuration Options        ###
#######################################################
[statesync]
# Restore from a snapshot offered by peers instead of replaying every block
enable = false

# RPC servers (at least two, comma separated) used to verify the snapshot
rpc_servers = ""
trust_height = 0
trust_hash = ""
trust_period = "168h0m0s"

# How long to look for snapshots before picking one
discovery_time = "15s"

# Where snapshot chunks are kept while restoring (empty = system temp dir)
temp_dir = ""

# Chunk request timeout and parallel fetchers
chunk_request_timeout = "10s"
chunk_fetchers = "4"

#######################################################
###       Block Sync Configuration Options          ###
#######################################################
[blocksync]

# Block sync implementation
version = "v0"

#######################################################
###         Consensus Configuration Options         ###
#######################################################
[consensus]

wal_file = "data/cs.wal/wal"

# Round timeouts
timeout_propose = "3s"
timeout_propose_delta = "500ms"
timeout_prevote = "1s"
timeout_prevote_delta = "500ms"
timeout_precommit = "1s"
timeout_precommit_delta = "500ms"
timeout_commit = "1s"

# Blocks to look back for double signing before signing (0 = off)
double_sign_check_height = 0

# Move on as soon as all precommits are in
skip_timeout_commit = false

# Empty blocks
create_empty_blocks = true
create_empty_blocks_interval = "0s"

# Gossip pacing
peer_gossip_sleep_duration = "100ms"
peer_query_maj23_sleep_duration = "2s"

#######################################################
###         Storage Configuration Options           ###
#######################################################
[storage]

# Drop ABCI responses after use (saves disk; breaks /block_results for old heights)
discard_abci_responses = false

#######################################################
###   Transaction Indexer Configuration Options     ###
#######################################################
[tx_index]

# Indexer: null | kv | psql
indexer = "kv"

# PostgreSQL connection string (psql indexer only)
psql-conn = ""

#######################################################
###       Instrumentation Configuration Options     ###
#######################################################
[instrumentation]

# Serve Prometheus metrics
prometheus = false

# Metrics listen address
prometheus_listen_addr = ":26660"

# Cap on simultaneous metrics connections
max_open_connections = 3

# Metrics namespace
namespace = "cometbft"
'''


def app_toml() -> str:
    return '''# Cosmos SDK application configuration (TOML).

###############################################################################
###                           Base Configuration                            ###
###############################################################################

# Lowest gas prices a validator accepts for a transaction (e.g. "0.01ngonka")
minimum-gas-prices = "0ngonka"

# Gas limit of a single query (0 = unlimited)
query-gas-limit = "0"

# Pruning strategy:
# default: keep the last 362880 states, prune every 10 blocks
# nothing: keep every state (archive node)
# everything: keep only the 2 latest states, prune every 10 blocks
# custom: use pruning-keep-recent and pruning-interval below
pruning = "default"

# These two only apply to the "custom" strategy
pruning-keep-recent = "0"
pruning-interval = "0"

# Stop at this height (0 = never)
halt-height = 0

# Stop at the first block at or after this unix time (0 = never)
halt-time = 0

# Minimum block age, in blocks, before CometBFT may prune it (0 = keep all)
min-retain-blocks = 0

# Cache the multistore between blocks
inter-block-cache = true

# Events to index (empty = all)
index-events = []

# IAVL cache size, in nodes
iavl-cache-size = 781250

# Disable the IAVL fast node
iavl-disable-fastnode = false

# Application database backend (empty = same as CometBFT's)
app-db-backend = ""

###############################################################################
###                         Telemetry Configuration                         ###
###############################################################################

[telemetry]

service-name = ""
enabled = false
enable-hostname = false
enable-hostname-label = false
enable-service-label = false
prometheus-retention-time = 0
global-labels = [
]
metrics-sink = ""
statsd-addr = ""
datadog-hostname = ""

###############################################################################
###                           API Configuration                             ###
###############################################################################

[api]

# REST API server
enable = false
swagger = false
address = "tcp://localhost:1317"
max-open-connections = 1000
rpc-read-timeout = 10
rpc-write-timeout = 0
rpc-max-body-bytes = 1000000
enabled-unsafe-cors = false

###############################################################################
###                           gRPC Configuration                            ###
###############################################################################

[grpc]

enable = true
address = "localhost:9090"
max-recv-msg-size = "10485760"
max-send-msg-size = "2147483647"

###############################################################################
###                        gRPC Web Configuration                           ###
###############################################################################

[grpc-web]

enable = true

###############################################################################
###                        State Sync Configuration                         ###
###############################################################################

[state-sync]

# Take a snapshot every this many blocks (0 = never)
snapshot-interval = 0

# Snapshots to keep
snapshot-keep-recent = 2

###############################################################################
###                              State Streaming                            ###
###############################################################################

[streaming]

[streaming.abci]
keys = []
plugin = ""
stop-node-on-err = true

###############################################################################
###                         Mempool                                         ###
###############################################################################

[mempool]
# Application-side mempool size (-1 = no app mempool)
max-txs = -1
'''


def client_toml(chain_id: str) -> str:
    return f'''# Client configuration (TOML), read by every inferenced command.

###############################################################################
###                           Client Configuration                          ###
###############################################################################

# Chain the client talks to
chain-id = "{chain_id}"
# Keyring backend: os | file | kwallet | pass | test | memory
keyring-backend = "test"
# Output format of queries: text | json
output = "text"
# CometBFT RPC endpoint of the node
node = "tcp://localhost:26657"
# How transactions are broadcast: sync | async
broadcast-mode = "sync"
'''


def node_key() -> tuple[dict, str]:
    """A node_key.json document and the node id derived from it."""
    seed = secrets.token_bytes(32)
    pub = hashlib.sha512(seed).digest()[:32]  # stands in for the ed25519 public key
    doc = {"priv_key": {"type": "tendermint/PrivKeyEd25519", "value": base64.b64encode(seed + pub).decode()}}
    return doc, node_id(doc)


def node_id(doc: dict) -> str:
    raw = base64.b64decode(doc["priv_key"]["value"])
    return hashlib.sha256(raw[32:]).hexdigest()[:40]


def validator_address(pub_b64: str) -> str:
    return hashlib.sha256(base64.b64decode(pub_b64)).hexdigest()[:40].upper()


def priv_validator_state() -> str:
    return json.dumps({"height": "0", "round": 0, "step": 0}, indent=2) + "\n"
