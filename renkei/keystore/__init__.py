"""Versioned key material, encrypted at rest under a master key (envelope encryption).

Each party keeps its data keys (link-code keys, the ID key, sealing keys) in
its own database, every version wrapped with AES-256-GCM under the party's
master key, the key's name and version bound in as associated data so a
wrapped key cannot be moved to another name or version. The master key comes
from a file, an environment variable or a PKCS#11 token (``master.py``).
"""

from renkei.keystore.master import MasterKey, create_master_key_file, load_master_key
from renkei.keystore.store import KeyStore, KeyVersion

__all__ = ["KeyStore", "KeyVersion", "MasterKey", "create_master_key_file", "load_master_key"]
