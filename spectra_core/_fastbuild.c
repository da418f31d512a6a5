/* spectra_core._fastbuild: builds the frozen attrs model objects from the msgspec
 * structs of spectra_core._wire in C, the optional speedup of a store's load.
 *
 * A plan, registered once per struct type, maps each of the struct's slots to a slot
 * of the attrs class and says how the value is carried over: as it is (COPY), built in
 * turn (ONE: a nested struct, or None), or as a tuple of built items (TUPLE: a list of
 * structs). build() allocates the object and stores the values in its slots directly:
 * what the pure-Python builders of _wire do through each slot's descriptor, without a
 * Python call per object and field. A struct of a type without a plan is built by its
 * own build() method; None stays None.
 *
 * Registration checks what the stores rely on: both sides' fields are object slots
 * (member descriptors) of these very types, the built class is a plain object-derived
 * class allocated by tp_alloc. Whether the attrs class may skip __init__ (no validators,
 * no post-init) is checked by _wire before it registers. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

enum { KIND_COPY = 0, KIND_ONE = 1, KIND_TUPLE = 2 };

#define MAX_FIELDS 16
#define MAX_PLANS 64

typedef struct {
    Py_ssize_t src; /* offset of the slot in the struct */
    Py_ssize_t dst; /* offset of the slot in the built object */
    int kind;
} Field;

typedef struct {
    PyTypeObject *src_type; /* strong references, kept for the life of the process */
    PyTypeObject *dst_type;
    Py_ssize_t count;
    Field fields[MAX_FIELDS];
} Plan;

static Plan plans[MAX_PLANS];
static Py_ssize_t plan_count = 0;
static PyObject *build_name = NULL; /* "build", interned */

static Plan *
find_plan(PyTypeObject *type)
{
    for (Py_ssize_t i = 0; i < plan_count; i++) {
        if (plans[i].src_type == type) {
            return &plans[i];
        }
    }
    return NULL;
}

/* The offset of the object slot ``name`` of ``type``, or -1 with an exception set. */
static Py_ssize_t
slot_offset(PyTypeObject *type, PyObject *name, int writable)
{
    PyObject *descr = PyObject_GetAttr((PyObject *)type, name);
    if (descr == NULL) {
        return -1;
    }
    Py_ssize_t offset = -1;
    if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "%s.%U is not a slot", type->tp_name, name);
    }
    else {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        PyTypeObject *owner = PyDescr_TYPE(descr);
        if (member->type != T_OBJECT_EX && member->type != T_OBJECT) {
            PyErr_Format(PyExc_TypeError, "%s.%U is not an object slot", type->tp_name, name);
        }
        else if (writable && (member->flags & READONLY)) {
            PyErr_Format(PyExc_TypeError, "%s.%U is a read-only slot", type->tp_name, name);
        }
        else if (!PyType_IsSubtype(type, owner)) {
            PyErr_Format(PyExc_TypeError, "%s.%U is a slot of another type", type->tp_name, name);
        }
        else {
            offset = member->offset;
        }
    }
    Py_DECREF(descr);
    return offset;
}

/* register(struct_type, cls, fields): fields is a tuple of (struct field, class field,
 * kind) triples covering every field of ``cls``. A second plan for the same struct type
 * replaces the first. */
static PyObject *
fb_register(PyObject *module, PyObject *args)
{
    PyTypeObject *src_type, *dst_type;
    PyObject *spec;
    if (!PyArg_ParseTuple(args, "O!O!O!:register", &PyType_Type, &src_type, &PyType_Type,
                          &dst_type, &PyTuple_Type, &spec)) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(spec);
    if (count > MAX_FIELDS) {
        PyErr_Format(PyExc_ValueError, "at most %d fields, %s has %zd", MAX_FIELDS,
                     dst_type->tp_name, count);
        return NULL;
    }
    if (dst_type->tp_new != PyBaseObject_Type.tp_new || dst_type->tp_itemsize != 0 ||
        dst_type->tp_alloc == NULL || (dst_type->tp_flags & Py_TPFLAGS_IS_ABSTRACT)) {
        PyErr_Format(PyExc_TypeError, "%s is not a plain class of slots", dst_type->tp_name);
        return NULL;
    }
    Plan plan = {src_type, dst_type, count, {{0}}};
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GET_ITEM(spec, i);
        PyObject *src_name, *dst_name;
        int kind;
        if (!PyArg_ParseTuple(item, "UUi:register", &src_name, &dst_name, &kind)) {
            return NULL;
        }
        if (kind != KIND_COPY && kind != KIND_ONE && kind != KIND_TUPLE) {
            PyErr_Format(PyExc_ValueError, "unknown kind %d for %U", kind, dst_name);
            return NULL;
        }
        plan.fields[i].kind = kind;
        if ((plan.fields[i].src = slot_offset(src_type, src_name, 0)) < 0 ||
            (plan.fields[i].dst = slot_offset(dst_type, dst_name, 1)) < 0) {
            return NULL;
        }
    }
    Plan *slot = find_plan(src_type);
    if (slot == NULL) {
        if (plan_count == MAX_PLANS) {
            PyErr_Format(PyExc_ValueError, "at most %d plans", MAX_PLANS);
            return NULL;
        }
        slot = &plans[plan_count++];
    }
    else {
        Py_DECREF(slot->src_type);
        Py_DECREF(slot->dst_type);
    }
    Py_INCREF(src_type);
    Py_INCREF(dst_type);
    *slot = plan;
    Py_RETURN_NONE;
}

static PyObject *build(PyObject *src);

/* Builds each struct of the list ``items`` into ``out``, the item array of a new tuple
 * or list of the same length (still all NULL): 0, or -1 with an exception set (the
 * container then holds what was built and frees it with itself). */
static int
build_items(PyObject *items, PyObject **out)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        if ((out[i] = build(PyList_GET_ITEM(items, i))) == NULL) {
            return -1;
        }
    }
    return 0;
}

static int
check_list(PyObject *items)
{
    if (!PyList_CheckExact(items)) {
        PyErr_Format(PyExc_TypeError, "expected a list of structs, got %.200s",
                     Py_TYPE(items)->tp_name);
        return -1;
    }
    return 0;
}

static PyObject *
build_tuple(PyObject *items)
{
    if (check_list(items) < 0) {
        return NULL;
    }
    PyObject *out = PyTuple_New(PyList_GET_SIZE(items));
    if (out != NULL && build_items(items, &PyTuple_GET_ITEM(out, 0)) < 0) {
        Py_CLEAR(out);
    }
    return out;
}

/* The model object for one struct (a new reference; None for None), or NULL with an
 * exception set. */
static PyObject *
build(PyObject *src)
{
    if (src == Py_None) {
        return Py_NewRef(src);
    }
    Plan *plan = find_plan(Py_TYPE(src));
    if (plan == NULL) {
        return PyObject_CallMethodNoArgs(src, build_name);
    }
    PyObject *values[MAX_FIELDS];
    Py_ssize_t done = 0;
    for (; done < plan->count; done++) {
        Field *field = &plan->fields[done];
        PyObject *value = *(PyObject **)((char *)src + field->src);
        if (value == NULL) {
            PyErr_Format(PyExc_AttributeError, "%s has an unset field",
                         Py_TYPE(src)->tp_name);
            goto fail;
        }
        if (field->kind == KIND_COPY || value == Py_None) {
            value = Py_NewRef(value);
        }
        else if (field->kind == KIND_ONE) {
            value = build(value);
        }
        else {
            value = build_tuple(value);
        }
        if (value == NULL) {
            goto fail;
        }
        values[done] = value;
    }
    /* every value is built before the object exists: nothing runs while it is half set */
    PyObject *obj = plan->dst_type->tp_alloc(plan->dst_type, 0);
    if (obj == NULL) {
        goto fail;
    }
    for (Py_ssize_t i = 0; i < plan->count; i++) {
        *(PyObject **)((char *)obj + plan->fields[i].dst) = values[i]; /* steals */
    }
    return obj;
fail:
    for (Py_ssize_t i = 0; i < done; i++) {
        Py_DECREF(values[i]);
    }
    return NULL;
}

static PyObject *
fb_build(PyObject *module, PyObject *src)
{
    return build(src);
}

static PyObject *
fb_build_list(PyObject *module, PyObject *items)
{
    if (check_list(items) < 0) {
        return NULL;
    }
    PyObject *out = PyList_New(PyList_GET_SIZE(items));
    if (out != NULL && build_items(items, ((PyListObject *)out)->ob_item) < 0) {
        Py_CLEAR(out);
    }
    return out;
}

static PyMethodDef fb_methods[] = {
    {"register", fb_register, METH_VARARGS,
     "register(struct_type, cls, fields): build cls from struct_type by the (struct "
     "field, class field, kind) triples in fields."},
    {"build", fb_build, METH_O, "build(struct): the model object of one struct (None: None)."},
    {"build_list", fb_build_list, METH_O,
     "build_list(structs): the model objects of a list of structs, as a new list."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fb_module = {
    PyModuleDef_HEAD_INIT,
    "spectra_core._fastbuild",
    "Builds spectra's model objects from msgspec structs in C (optional speedup).",
    -1,
    fb_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__fastbuild(void)
{
    build_name = PyUnicode_InternFromString("build");
    if (build_name == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&fb_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "COPY", KIND_COPY) < 0 ||
        PyModule_AddIntConstant(module, "ONE", KIND_ONE) < 0 ||
        PyModule_AddIntConstant(module, "TUPLE", KIND_TUPLE) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
