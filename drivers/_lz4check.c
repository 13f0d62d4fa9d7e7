/*
 * acomp_drivers._lz4check: whether an LZ4 block has a match with offset 0.
 *
 * The LZ4 block format forbids offset 0; liblz4's LZ4_decompress_safe() (1.9.4, the one
 * python-lz4 bundles) decodes such a match as zeros. lz4-scomp and lz4hc-scomp refuse the
 * block (-EINVAL) after this walk over its sequences: token, literal length (15 + 255-runs),
 * literals, 2-byte offset, match length (15 + 255-runs). About a microsecond for a page's
 * block; drivers/_lz4safe.py has the same walk in Python for a build without a compiler.
 * Every read is bounds-checked: the walk is safe on any input.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h> /* defines _GNU_SOURCE: memmem */
#include <string.h>

static int walk(const unsigned char *p, const unsigned char *end)
{
	while (p < end) {
		unsigned t = *p++;
		size_t lit = t >> 4;

		if (lit == 15) {
			unsigned s;

			do {
				if (p >= end)
					return 0;
				s = *p++;
				lit += s;
			} while (s == 255);
		}
		if ((size_t)(end - p) <= lit)
			return 0; /* the last literals: the end of the block */
		p += lit;
		if (end - p < 2)
			return 0;
		if (p[0] == 0 && p[1] == 0)
			return 1;
		p += 2;
		if ((t & 15) == 15) {
			unsigned s;

			do {
				if (p >= end)
					return 0;
				s = *p++;
			} while (s == 255);
		}
	}
	return 0;
}

static PyObject *has_zero_offset(PyObject *self, PyObject *arg)
{
	Py_buffer b;
	int found;

	if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
		return NULL;
	/* An offset of 0 is two zero bytes: a block without any needs no walk (memmem is far
	 * cheaper than the walk's branch per sequence). */
	found = b.len >= 2 && memmem(b.buf, (size_t)b.len, "\0\0", 2) != NULL &&
		walk((const unsigned char *)b.buf, (const unsigned char *)b.buf + b.len);
	PyBuffer_Release(&b);
	return PyBool_FromLong(found);
}

static PyMethodDef methods[] = {
	{"has_zero_offset", has_zero_offset, METH_O,
	 "has_zero_offset(block) -> bool: whether the LZ4 block has a match with offset 0"},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT, "_lz4check", "LZ4 block offset-0 check", -1, methods,
};

PyMODINIT_FUNC PyInit__lz4check(void)
{
	return PyModule_Create(&module);
}
