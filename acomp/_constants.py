"""Constants with the kernel's values (include/linux/crypto.h, include/crypto/acompress.h)."""

from __future__ import annotations

__all__ = (
    "CRYPTO_ACOMP_ALLOC_OUTPUT",
    "CRYPTO_ACOMP_DST_MAX",
    "CRYPTO_ACOMP_REQ_DST_NONDMA",
    "CRYPTO_ACOMP_REQ_DST_VIRT",
    "CRYPTO_ACOMP_REQ_PRIVATE",
    "CRYPTO_ACOMP_REQ_SRC_NONDMA",
    "CRYPTO_ACOMP_REQ_SRC_VIRT",
    "CRYPTO_ALG_ASYNC",
    "CRYPTO_ALG_INTERNAL",
    "CRYPTO_ALG_REQ_CHAIN",
    "CRYPTO_ALG_REQ_SEG",
    "CRYPTO_ALG_REQ_VIRT",
    "CRYPTO_ALG_TESTED",
    "CRYPTO_ALG_TYPE_ACOMPRESS",
    "CRYPTO_ALG_TYPE_ACOMPRESS_MASK",
    "CRYPTO_ALG_TYPE_COMPRESS",
    "CRYPTO_ALG_TYPE_MASK",
    "CRYPTO_ALG_TYPE_SCOMPRESS",
    "CRYPTO_TFM_REQ_MAY_BACKLOG",
    "CRYPTO_TFM_REQ_MAY_SLEEP",
    "PAGE_SIZE",
    "SCOMP_SCRATCH_SIZE",
)

#: Legacy synchronous ``crypto_comp``; invisible to acomp lookups.
CRYPTO_ALG_TYPE_COMPRESS = 0x2
#: An asynchronous compression algorithm (``struct acomp_alg``).
CRYPTO_ALG_TYPE_ACOMPRESS = 0xA
#: A synchronous compression algorithm (``struct scomp_alg``), served through the scomp wrapper.
CRYPTO_ALG_TYPE_SCOMPRESS = 0xB
#: ``crypto_alloc_acomp`` matches types 0xa and 0xb with this mask.
CRYPTO_ALG_TYPE_ACOMPRESS_MASK = 0xE
#: The low bits of ``cra_flags`` that hold the type.
CRYPTO_ALG_TYPE_MASK = 0xF
#: Set by drivers whose completions come later (hardware); ``mask=CRYPTO_ALG_ASYNC`` excludes them.
CRYPTO_ALG_ASYNC = 0x80
#: Set by the crypto manager once the algorithm passed its self-test.
CRYPTO_ALG_TESTED = 0x400
#: Internal algorithms, not for direct users.
CRYPTO_ALG_INTERNAL = 0x2000
#: v6.16+ (include/linux/crypto.h): the algorithm takes virtual addresses itself, so
#: ``crypto_acomp_compress`` hands it every request as it is (no conversion to a scatterlist,
#: no synchronous fallback for a NONDMA buffer). ``scomp_prepare_alg`` sets it on every scomp
#: algorithm (here at registration, in every era; only the v6.15+ submission reads it).
CRYPTO_ALG_REQ_VIRT = 0x40000
#: v6.15's name of the same bit: the algorithm walks a request chain itself (scomp does,
#: ``scomp_acomp_chain``), so ``acomp_do_req_chain`` passes the head straight to it.
CRYPTO_ALG_REQ_CHAIN = CRYPTO_ALG_REQ_VIRT
#: Proposed (Herbert Xu, "crypto: acomp - Add bit to indicate segmentation support", Dec 2025,
#: carried in the compress-batching series v14; not merged): the algorithm compresses a request
#: of many ``unit_size`` segments itself; without it the trivial segmentation takes one segment.
#: Read only by the "proposed" submission (`acomp.segment`).
CRYPTO_ALG_REQ_SEG = 0x00100000

#: Request flag: the callee may sleep.
CRYPTO_TFM_REQ_MAY_SLEEP = 0x200
#: Request flag: a full queue takes the request into its backlog (``-EBUSY``) instead of refusing.
CRYPTO_TFM_REQ_MAY_BACKLOG = 0x400

#: ``acomp_req.flags``: dst was None, the wrapper allocates the output (v4.10 - v6.14).
CRYPTO_ACOMP_ALLOC_OUTPUT = 0x1
#: Cap on an allocated dst (v6.2 - v6.14).
CRYPTO_ACOMP_DST_MAX = 131072
#: v6.15+ request flags in ``req->base.flags`` (include/crypto/acompress.h): the source or the
#: destination is a virtual address (``acomp_request_set_src_dma``), or one a device cannot DMA
#: to (``_nondma``: an async tfm hands such a request to its synchronous fallback).
CRYPTO_ACOMP_REQ_SRC_VIRT = 0x2
CRYPTO_ACOMP_REQ_SRC_NONDMA = 0x4
CRYPTO_ACOMP_REQ_DST_VIRT = 0x8
CRYPTO_ACOMP_REQ_DST_NONDMA = 0x10
#: The private bits `acomp_request_set_callback` keeps and `acomp_request_set_params` clears.
CRYPTO_ACOMP_REQ_PRIVATE = 0x7E
#: Size of each per-CPU scomp scratch buffer, src and dst (v4.10 - v6.14).
SCOMP_SCRATCH_SIZE = 131072

PAGE_SIZE = 4096
