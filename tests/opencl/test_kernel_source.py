"""The text the lz4-opencl programs are built from (device.kernel_source): both kernel files
include lz4_common.cl, the host puts its text in place of the include line, and #line
directives keep the compiler's file names and line numbers those of the files.

The text tests need no OpenCL device; the build test (marked gpu) compiles a program whose
error sits in an included file and checks that the compiler names that file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

cl = pytest.importorskip("pyopencl")

from acomp_drivers.lz4_opencl.device import (  # noqa: E402
    COMMON_SOURCE,
    COMPACT_SOURCE,
    KERNEL_SOURCE,
    KERNEL_SOURCE_SG,
    _build,
    kernel_source,
)

LINE = re.compile(r'^#line (\d+) "([^"]+)"$')


def origins(text: str, name: str) -> list[tuple[str, int, str]]:
    """(file, line, text) of every line of a program text that is not a #line directive,
    the way the C preprocessor numbers them."""
    out, cur, num = [], name, 1
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            cur, num = m.group(2), int(m.group(1))
            continue
        out.append((cur, num, line))
        num += 1
    return out


@pytest.mark.parametrize("path", [KERNEL_SOURCE, KERNEL_SOURCE_SG], ids=lambda p: p.name)
def test_each_program_is_its_file_with_the_common_file_in_place_of_the_include(
    path: Path,
) -> None:
    text = kernel_source(path)
    assert '#include "lz4_common.cl"' in path.read_text()
    assert not re.search(r"^\s*#\s*include", text, re.M)
    common = COMMON_SOURCE.read_text()
    assert text.count(common.rstrip("\n")) == 1
    # every line, mapped back through the #line directives, is that line of its file
    files = {p.name: p.read_text().splitlines() for p in (path, COMMON_SOURCE)}
    lines = origins(text, path.name)
    for f, n, line in lines:
        assert files[f][n - 1] == line, (f, n)
    # and every line of both files is there (the include line excepted)
    seen = {(f, n) for f, n, _ in lines}
    for f, src in files.items():
        missing = [n for n in range(1, len(src) + 1) if (f, n) not in seen]
        assert missing == ([] if f == COMMON_SOURCE.name else
                           [src.index('#include "lz4_common.cl"') + 1])


def test_a_file_without_includes_is_its_own_text() -> None:
    assert kernel_source(COMPACT_SOURCE) == COMPACT_SOURCE.read_text()


def test_the_text_changes_with_the_included_file(tmp_path: Path) -> None:
    """What makes every cache keyed on the program text see a change of the common file."""
    main, inc = tmp_path / "main.cl", tmp_path / "inc.cl"
    main.write_text('#include "inc.cl"\nkernel void k(global int *x) { x[0] = V; }\n')
    inc.write_text("#define V 1\n")
    first = kernel_source(main)
    inc.write_text("#define V 2\n")
    second = kernel_source(main)
    assert first != second
    assert "#define V 2" in second
    assert second.endswith('#line 2 "main.cl"\nkernel void k(global int *x) { x[0] = V; }\n')


def _device() -> cl.Device:
    try:
        return next(d for p in cl.get_platforms() for d in p.get_devices())
    except (StopIteration, cl.Error):
        pytest.skip("no OpenCL device")


@pytest.mark.gpu
def test_the_compiler_names_the_included_file_and_line(tmp_path: Path) -> None:
    ctx = cl.Context([_device()])
    main, inc = tmp_path / "main.cl", tmp_path / "inc.cl"
    main.write_text('#include "inc.cl"\nkernel void k(global int *x) { x[0] = f(); }\n')
    inc.write_text("int f(void)\n{\n    return undeclared_name;\n}\n")
    with pytest.raises(cl.RuntimeError) as e:
        _build(ctx, main, [])
    assert re.search(r"inc\.cl:3:", str(e.value)), str(e.value)
    # fixed in the included file only: the program builds and runs
    inc.write_text("int f(void)\n{\n    return 7;\n}\n")
    prog = _build(ctx, main, [])
    q = cl.CommandQueue(ctx)
    buf = cl.Buffer(ctx, cl.mem_flags.READ_WRITE, 4)
    prog.k(q, (1,), None, buf)
    out = np.zeros(1, np.int32)
    cl.enqueue_copy(q, out, buf)
    q.finish()
    assert int(out[0]) == 7
