"""The import-cycle check on fixture crates with known circles (and one without): each path
form it must follow (`super::` from a file and from a mod.rs, `self::`, `crate::` with nested
groups and aliases, a `pub use` re-export, a path in code) makes a circle it must report, and
a unit-test module's imports make none. Run by scripts/check-layout."""
import os, sys, tempfile, unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import import_cycles  # noqa: E402


def crate(files):
    root = tempfile.mkdtemp(prefix='cycles-')
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)
    return root


def found(files):
    return [names for names, _ in import_cycles.cycles(crate(files))]


LIB = 'pub mod a;\n'


class Cycles(unittest.TestCase):
    def test_super_between_sibling_files(self):
        self.assertEqual(found({
            'lib.rs': LIB,
            'a/mod.rs': 'mod b;\nmod c;\n',
            'a/b.rs': 'use super::c::Queue;\n',
            'a/c.rs': 'use super::b::Handle;\n',
        }), [['a/b.rs', 'a/c.rs']])

    def test_super_super_and_self_from_a_mod_rs(self):
        # a/b/c.rs reaches a/z.rs by super::super (the old check went one level too high and
        # lost the edge); a/z.rs reaches c.rs through a/b/mod.rs's `pub use self::c::Deep`.
        self.assertEqual(found({
            'lib.rs': 'mod a;\n',
            'a/mod.rs': 'mod b;\nmod z;\n',
            'a/b/mod.rs': 'mod c;\npub use self::c::Deep;\n',
            'a/b/c.rs': 'use super::super::z::Zed;\npub struct Deep;\n',
            'a/z.rs': 'use crate::a::b::Deep;\npub struct Zed;\n',
        }), [['a/b/c.rs', 'a/z.rs']])

    def test_crate_paths_in_nested_groups_with_aliases(self):
        self.assertEqual(found({
            'lib.rs': 'mod x;\nmod y;\nmod w;\n',
            'x.rs': 'use crate::{w, y::{Deep as Shallow, other::{self}}};\n',
            'y/mod.rs': 'pub mod other;\nuse crate::x::{Q};\n',
            'y/other.rs': '',
            'w.rs': '',
        }), [['x.rs', 'y/mod.rs']])

    def test_a_re_export_leads_to_the_file_that_defines_it(self):
        self.assertEqual(found({
            'lib.rs': 'mod m;\nmod other;\n',
            'm/mod.rs': 'mod inner;\npub use self::inner::Thing;\n',
            'm/inner.rs': 'use crate::other::helper;\npub struct Thing;\n',
            'other.rs': 'use crate::m::Thing;\npub fn helper() {}\n',
        }), [['m/inner.rs', 'other.rs']])

    def test_a_child_module_named_without_self(self):
        # floor/mod.rs re-exports fanout's Channels by a bare child path; ws.rs reaches it
        # through the re-export, and fanout.rs uses ws: a circle between the two siblings.
        self.assertEqual(found({
            'lib.rs': 'mod floor;\n',
            'floor/mod.rs': 'mod fanout;\nmod ws;\npub use fanout::Channels;\n',
            'floor/fanout.rs': 'pub struct Channels;\nfn f() { super::ws::Conn::new(); }\n',
            'floor/ws.rs': 'use super::Channels;\npub struct Conn;\n',
        }), [['floor/fanout.rs', 'floor/ws.rs']])

    def test_a_folder_face_and_its_children_are_no_circle(self):
        # A trait in broker/mod.rs, its implementations beside it, the constructor picking one.
        self.assertEqual(found({
            'lib.rs': 'mod broker;\n',
            'broker/mod.rs': 'mod memory;\npub trait Broker {}\npub fn new() { memory::Memory::new(); }\n',
            'broker/memory.rs': 'use super::Broker;\npub struct Memory;\n',
        }), [])

    def test_paths_written_in_code(self):
        self.assertEqual(found({
            'lib.rs': 'mod a;\nmod b;\n',
            'a.rs': 'pub fn g() { crate::b::f(); }\n',
            'b.rs': 'pub fn f() { super::a::g(); }\n',
        }), [['a.rs', 'b.rs']])

    def test_a_chain_and_a_test_module_make_no_circle(self):
        self.assertEqual(found({
            'lib.rs': 'mod a;\nmod b;\nmod c;\n',
            'a.rs': 'use crate::b::B;\n',
            'b.rs': 'use super::c::C;\npub struct B;\n',
            'c.rs': 'pub struct C;\n#[cfg(test)]\nmod tests {\n    use crate::a::*;\n}\n',
        }), [])

    def test_use_trees_are_read_whole(self):
        self.assertEqual(
            import_cycles.use_paths('crate::{a::{b, c::{d, e}}, f, self}'),
            [['crate', 'a', 'b'], ['crate', 'a', 'c', 'd'], ['crate', 'a', 'c', 'e'],
             ['crate', 'f'], ['crate']])


if __name__ == '__main__':
    unittest.main()
