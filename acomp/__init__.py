"""acomp: the Linux kernel's asynchronous compression stack, executable.

The users' surface, with the kernel's names (``include/crypto/acompress.h``): allocate a
transform, build requests over scatterlists, submit, and wait with `crypto_wait_req`. Driver
authors import `acomp.internal`; the execution model is `acomp.sched`. For plain Python use,
``async with acomp.open("lz4") as c: await c.compress(data)``.

``import acomp`` imports no GPU library: device drivers load on the first lookup.
"""

from __future__ import annotations

import logging

# The composition root: the scomp type (with its v6.15+ wrapper) and the crypto manager
# (self-tests, module loading on a lookup miss) register themselves with the registry
# (`acomp.algapi`), which imports neither.
from acomp import cryptomgr, scomp_streams, scompress  # noqa: F401
from acomp._constants import (
    CRYPTO_ACOMP_ALLOC_OUTPUT,
    CRYPTO_ACOMP_DST_MAX,
    CRYPTO_ACOMP_REQ_DST_NONDMA,
    CRYPTO_ACOMP_REQ_DST_VIRT,
    CRYPTO_ACOMP_REQ_SRC_NONDMA,
    CRYPTO_ACOMP_REQ_SRC_VIRT,
    CRYPTO_ALG_ASYNC,
    CRYPTO_ALG_INTERNAL,
    CRYPTO_ALG_REQ_CHAIN,
    CRYPTO_ALG_REQ_SEG,
    CRYPTO_ALG_REQ_VIRT,
    CRYPTO_ALG_TESTED,
    CRYPTO_ALG_TYPE_ACOMPRESS,
    CRYPTO_ALG_TYPE_ACOMPRESS_MASK,
    CRYPTO_ALG_TYPE_COMPRESS,
    CRYPTO_ALG_TYPE_MASK,
    CRYPTO_ALG_TYPE_SCOMPRESS,
    CRYPTO_TFM_REQ_MAY_BACKLOG,
    CRYPTO_TFM_REQ_MAY_SLEEP,
    PAGE_SIZE,
    SCOMP_SCRATCH_SIZE,
)
from acomp._errors import (
    AcompError,
    AlgorithmNotFound,
    BadData,
    Busy,
    CryptoError,
    DeviceError,
    OutputTooSmall,
    UnsupportedKernel,
    errno_name,
)
from acomp.acompress import (
    ACOMP_FBREQ_ON_STACK,
    ACOMP_REQUEST_CLONE,
    ACOMP_REQUEST_ON_STACK,
    AcompReq,
    CryptoAcomp,
    acomp_is_async,
    acomp_request_alloc,
    acomp_request_chain,
    acomp_request_free,
    acomp_request_set_callback,
    acomp_request_set_dst_dma,
    acomp_request_set_dst_folio,
    acomp_request_set_dst_nondma,
    acomp_request_set_dst_sg,
    acomp_request_set_params,
    acomp_request_set_src_dma,
    acomp_request_set_src_folio,
    acomp_request_set_src_nondma,
    acomp_request_set_src_sg,
    crypto_acomp_compress,
    crypto_acomp_decompress,
    crypto_acomp_driver_name,
    crypto_acomp_name,
    crypto_acomp_reqtfm,
    crypto_alloc_acomp,
    crypto_alloc_acomp_node,
    crypto_free_acomp,
    crypto_has_acomp,
)
from acomp.api import Compressor, CompressorStatistics, compress, decompress, open
from acomp.batch import (
    BatchResult,
    batch_buffer,
    crypto_acomp_batch_compress,
    crypto_acomp_batch_decompress,
    crypto_acomp_batch_size,
)
from acomp.eras import kernel, kernel_era, set_kernel, using_kernel
from acomp.proc import proc_crypto
from acomp.scatterlist import (
    Scatterlist,
    sg_copy_from_buffer,
    sg_copy_to_buffer,
    sg_init_one,
    sg_init_table,
    sg_set_buf,
    sgl_alloc,
)
from acomp.segment import acomp_request_set_unit_size, sg_length
from acomp.wait import (
    DECLARE_CRYPTO_WAIT,
    CryptoWait,
    crypto_init_wait,
    crypto_req_done,
    crypto_wait_req,
    crypto_wait_req_sync,
)

__version__ = "0.1.0"

# A library logs; the application decides where it goes (no stderr noise by default).
logging.getLogger("acomp").addHandler(logging.NullHandler())

__all__ = (
    "ACOMP_FBREQ_ON_STACK",
    "ACOMP_REQUEST_CLONE",
    "ACOMP_REQUEST_ON_STACK",
    "CRYPTO_ACOMP_ALLOC_OUTPUT",
    "CRYPTO_ACOMP_DST_MAX",
    "CRYPTO_ACOMP_REQ_DST_NONDMA",
    "CRYPTO_ACOMP_REQ_DST_VIRT",
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
    "DECLARE_CRYPTO_WAIT",
    "PAGE_SIZE",
    "SCOMP_SCRATCH_SIZE",
    "AcompError",
    "AcompReq",
    "AlgorithmNotFound",
    "BadData",
    "BatchResult",
    "Busy",
    "Compressor",
    "CompressorStatistics",
    "CryptoAcomp",
    "CryptoError",
    "CryptoWait",
    "DeviceError",
    "OutputTooSmall",
    "Scatterlist",
    "UnsupportedKernel",
    "acomp_is_async",
    "acomp_request_alloc",
    "acomp_request_chain",
    "acomp_request_free",
    "acomp_request_set_callback",
    "acomp_request_set_dst_dma",
    "acomp_request_set_dst_folio",
    "acomp_request_set_dst_nondma",
    "acomp_request_set_dst_sg",
    "acomp_request_set_params",
    "acomp_request_set_src_dma",
    "acomp_request_set_src_folio",
    "acomp_request_set_src_nondma",
    "acomp_request_set_src_sg",
    "acomp_request_set_unit_size",
    "batch_buffer",
    "compress",
    "crypto_acomp_batch_compress",
    "crypto_acomp_batch_decompress",
    "crypto_acomp_batch_size",
    "crypto_acomp_compress",
    "crypto_acomp_decompress",
    "crypto_acomp_driver_name",
    "crypto_acomp_name",
    "crypto_acomp_reqtfm",
    "crypto_alloc_acomp",
    "crypto_alloc_acomp_node",
    "crypto_free_acomp",
    "crypto_has_acomp",
    "crypto_init_wait",
    "crypto_req_done",
    "crypto_wait_req",
    "crypto_wait_req_sync",
    "decompress",
    "errno_name",
    "kernel",
    "kernel_era",
    "open",
    "proc_crypto",
    "set_kernel",
    "sg_copy_from_buffer",
    "sg_copy_to_buffer",
    "sg_init_one",
    "sg_init_table",
    "sg_length",
    "sg_set_buf",
    "sgl_alloc",
    "using_kernel",
)
