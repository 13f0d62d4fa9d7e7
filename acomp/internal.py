"""What algorithm and driver authors use: base classes, registration, completion, modules.

Kernel counterpart: ``include/crypto/internal/acompress.h`` and
``include/crypto/internal/scompress.h`` (plus ``crypto/engine.h`` for queued drivers), with
v6.16's per-CPU streams (`acomp.streams`).
"""

from __future__ import annotations

from acomp.acompress import AcompReq, CryptoAcomp, acomp_request_chained, acomp_request_complete
from acomp.algapi import (
    AcompAlg,
    CryptoAlg,
    ScompAlg,
    crypto_register_acomp,
    crypto_register_acomps,
    crypto_register_scomp,
    crypto_register_scomps,
    crypto_unregister_acomp,
    crypto_unregister_acomps,
    crypto_unregister_scomp,
    crypto_unregister_scomps,
)
from acomp.kmod import CryptoModule, register_template, request_module
from acomp.segment import crypto_acomp_req_seg, finish_segments, segment_views, set_sg_length
from acomp.streams import (
    CryptoAcompStream,
    CryptoAcompStreams,
    crypto_acomp_alloc_streams,
    crypto_acomp_free_streams,
    crypto_acomp_lock_stream_bh,
    crypto_acomp_unlock_stream_bh,
)
from acomp.testmgr import TestDesc, register_test
from acomp.walk import (
    AcompWalk,
    acomp_walk_done_dst,
    acomp_walk_done_src,
    acomp_walk_more_src,
    acomp_walk_next_dst,
    acomp_walk_next_src,
    acomp_walk_virt,
)

__all__ = (
    "AcompAlg",
    "AcompReq",
    "AcompWalk",
    "CryptoAcomp",
    "CryptoAcompStream",
    "CryptoAcompStreams",
    "CryptoAlg",
    "CryptoModule",
    "ScompAlg",
    "TestDesc",
    "acomp_request_chained",
    "acomp_request_complete",
    "acomp_walk_done_dst",
    "acomp_walk_done_src",
    "acomp_walk_more_src",
    "acomp_walk_next_dst",
    "acomp_walk_next_src",
    "acomp_walk_virt",
    "crypto_acomp_alloc_streams",
    "crypto_acomp_free_streams",
    "crypto_acomp_lock_stream_bh",
    "crypto_acomp_req_seg",
    "crypto_acomp_unlock_stream_bh",
    "crypto_register_acomp",
    "crypto_register_acomps",
    "crypto_register_scomp",
    "crypto_register_scomps",
    "crypto_unregister_acomp",
    "crypto_unregister_acomps",
    "crypto_unregister_scomp",
    "crypto_unregister_scomps",
    "finish_segments",
    "register_template",
    "register_test",
    "request_module",
    "segment_views",
    "set_sg_length",
)
