"""__init__ templates of the package's dataclass shapes, compiled with the
package (dataclass.py makes any other shape at run time). Generated:
python -m pydtrace.lang.dataclass > src/pydtrace/lang/dataclass_templates.py
"""

# fmt: off
# ruff: noqa


def init_00_A_0_0(self, _p0):
    self._n0 = _p0


def init_00_AA_0_0(self, _p0, _p1):
    self._n0 = _p0
    self._n1 = _p1


def init_00_AAA_0_0(self, _p0, _p1, _p2):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2


def init_00_AAAA_0_0(self, _p0, _p1, _p2, _p3):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _p3


def init_00_AAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _p3
    self._n4 = _p4


def init_00_AAAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _p3
    self._n4 = _p4
    self._n5 = _p5


def init_00_AAAAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _p3
    self._n4 = _p4
    self._n5 = _p5
    self._n6 = _p6


def init_00_AAAAAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _p3
    self._n4 = _p4
    self._n5 = _p5
    self._n6 = _p6
    self._n7 = _p7


def init_00_AAAAAAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7, _p8):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _p3
    self._n4 = _p4
    self._n5 = _p5
    self._n6 = _p6
    self._n7 = _p7
    self._n8 = _p8


def init_00_AAAAAAAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7, _p8, _p9):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _p3
    self._n4 = _p4
    self._n5 = _p5
    self._n6 = _p6
    self._n7 = _p7
    self._n8 = _p8
    self._n9 = _p9


def init_00_AAAAAAAAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7, _p8, _p9, _p10):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _p3
    self._n4 = _p4
    self._n5 = _p5
    self._n6 = _p6
    self._n7 = _p7
    self._n8 = _p8
    self._n9 = _p9
    self._n10 = _p10


def init_00_AAAAAAAAAAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7, _p8, _p9, _p10, _p11, _p12):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _p3
    self._n4 = _p4
    self._n5 = _p5
    self._n6 = _p6
    self._n7 = _p7
    self._n8 = _p8
    self._n9 = _p9
    self._n10 = _p10
    self._n11 = _p11
    self._n12 = _p12


def init_00_AAAAAAAAAAAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7, _p8, _p9, _p10, _p11, _p12, _p13):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _p3
    self._n4 = _p4
    self._n5 = _p5
    self._n6 = _p6
    self._n7 = _p7
    self._n8 = _p8
    self._n9 = _p9
    self._n10 = _p10
    self._n11 = _p11
    self._n12 = _p12
    self._n13 = _p13


def init_00_AAAAAAAF_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _p3
    self._n4 = _p4
    self._n5 = _p5
    self._n6 = _p6
    self._n7 = _f7() if _p7 is MISSING else _p7


def init_00_AAAAAAAFAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7, _p8, _p9, _p10):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _p3
    self._n4 = _p4
    self._n5 = _p5
    self._n6 = _p6
    self._n7 = _f7() if _p7 is MISSING else _p7
    self._n8 = _p8
    self._n9 = _p9
    self._n10 = _p10


def init_00_AAAAAF_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _p3
    self._n4 = _p4
    self._n5 = _f5() if _p5 is MISSING else _p5


def init_00_AAAAF_0_0(self, _p0, _p1, _p2, _p3, _p4):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _p3
    self._n4 = _f4() if _p4 is MISSING else _p4


def init_00_AAAAFA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _p3
    self._n4 = _f4() if _p4 is MISSING else _p4
    self._n5 = _p5


def init_00_AAAF_0_0(self, _p0, _p1, _p2, _p3):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _f3() if _p3 is MISSING else _p3


def init_00_AAAFA_0_0(self, _p0, _p1, _p2, _p3, _p4):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _f3() if _p3 is MISSING else _p3
    self._n4 = _p4


def init_00_AAAFFA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _f3() if _p3 is MISSING else _p3
    self._n4 = _f4() if _p4 is MISSING else _p4
    self._n5 = _p5


def init_00_AAF_0_0(self, _p0, _p1, _p2):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _f2() if _p2 is MISSING else _p2


def init_00_AAFAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _f2() if _p2 is MISSING else _p2
    self._n3 = _p3
    self._n4 = _p4
    self._n5 = _p5


def init_00_AAFAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _f2() if _p2 is MISSING else _p2
    self._n3 = _p3
    self._n4 = _p4
    self._n5 = _p5
    self._n6 = _p6


def init_00_AAFAAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _f2() if _p2 is MISSING else _p2
    self._n3 = _p3
    self._n4 = _p4
    self._n5 = _p5
    self._n6 = _p6
    self._n7 = _p7


def init_00_AAFAAAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7, _p8):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _f2() if _p2 is MISSING else _p2
    self._n3 = _p3
    self._n4 = _p4
    self._n5 = _p5
    self._n6 = _p6
    self._n7 = _p7
    self._n8 = _p8


def init_00_AAFFAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7):
    self._n0 = _p0
    self._n1 = _p1
    self._n2 = _f2() if _p2 is MISSING else _p2
    self._n3 = _f3() if _p3 is MISSING else _p3
    self._n4 = _p4
    self._n5 = _p5
    self._n6 = _p6
    self._n7 = _p7


def init_00_AFAA_0_0(self, _p0, _p1, _p2, _p3):
    self._n0 = _p0
    self._n1 = _f1() if _p1 is MISSING else _p1
    self._n2 = _p2
    self._n3 = _p3


def init_00_AFAAA_0_0(self, _p0, _p1, _p2, _p3, _p4):
    self._n0 = _p0
    self._n1 = _f1() if _p1 is MISSING else _p1
    self._n2 = _p2
    self._n3 = _p3
    self._n4 = _p4


def init_00_AFAAAFAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7, _p8):
    self._n0 = _p0
    self._n1 = _f1() if _p1 is MISSING else _p1
    self._n2 = _p2
    self._n3 = _p3
    self._n4 = _p4
    self._n5 = _f5() if _p5 is MISSING else _p5
    self._n6 = _p6
    self._n7 = _p7
    self._n8 = _p8


def init_00_AFFA_0_0(self, _p0, _p1, _p2, _p3):
    self._n0 = _p0
    self._n1 = _f1() if _p1 is MISSING else _p1
    self._n2 = _f2() if _p2 is MISSING else _p2
    self._n3 = _p3


def init_00_AFFF_0_0(self, _p0, _p1, _p2, _p3):
    self._n0 = _p0
    self._n1 = _f1() if _p1 is MISSING else _p1
    self._n2 = _f2() if _p2 is MISSING else _p2
    self._n3 = _f3() if _p3 is MISSING else _p3


def init_00_F_0_0(self, _p0):
    self._n0 = _f0() if _p0 is MISSING else _p0


def init_00_FAA_0_0(self, _p0, _p1, _p2):
    self._n0 = _f0() if _p0 is MISSING else _p0
    self._n1 = _p1
    self._n2 = _p2


def init_00_FAAA_0_0(self, _p0, _p1, _p2, _p3):
    self._n0 = _f0() if _p0 is MISSING else _p0
    self._n1 = _p1
    self._n2 = _p2
    self._n3 = _p3


def init_00_FFFFFFAAF_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7, _p8):
    self._n0 = _f0() if _p0 is MISSING else _p0
    self._n1 = _f1() if _p1 is MISSING else _p1
    self._n2 = _f2() if _p2 is MISSING else _p2
    self._n3 = _f3() if _p3 is MISSING else _p3
    self._n4 = _f4() if _p4 is MISSING else _p4
    self._n5 = _f5() if _p5 is MISSING else _p5
    self._n6 = _p6
    self._n7 = _p7
    self._n8 = _f8() if _p8 is MISSING else _p8


def init_00_FFFFFFAF_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7):
    self._n0 = _f0() if _p0 is MISSING else _p0
    self._n1 = _f1() if _p1 is MISSING else _p1
    self._n2 = _f2() if _p2 is MISSING else _p2
    self._n3 = _f3() if _p3 is MISSING else _p3
    self._n4 = _f4() if _p4 is MISSING else _p4
    self._n5 = _f5() if _p5 is MISSING else _p5
    self._n6 = _p6
    self._n7 = _f7() if _p7 is MISSING else _p7


def init_00_FFFFFFFFFFAAAAAAAAAAAAAAAAAAAAF_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7, _p8, _p9, _p10, _p11, _p12, _p13, _p14, _p15, _p16, _p17, _p18, _p19, _p20, _p21, _p22, _p23, _p24, _p25, _p26, _p27, _p28, _p29, _p30):
    self._n0 = _f0() if _p0 is MISSING else _p0
    self._n1 = _f1() if _p1 is MISSING else _p1
    self._n2 = _f2() if _p2 is MISSING else _p2
    self._n3 = _f3() if _p3 is MISSING else _p3
    self._n4 = _f4() if _p4 is MISSING else _p4
    self._n5 = _f5() if _p5 is MISSING else _p5
    self._n6 = _f6() if _p6 is MISSING else _p6
    self._n7 = _f7() if _p7 is MISSING else _p7
    self._n8 = _f8() if _p8 is MISSING else _p8
    self._n9 = _f9() if _p9 is MISSING else _p9
    self._n10 = _p10
    self._n11 = _p11
    self._n12 = _p12
    self._n13 = _p13
    self._n14 = _p14
    self._n15 = _p15
    self._n16 = _p16
    self._n17 = _p17
    self._n18 = _p18
    self._n19 = _p19
    self._n20 = _p20
    self._n21 = _p21
    self._n22 = _p22
    self._n23 = _p23
    self._n24 = _p24
    self._n25 = _p25
    self._n26 = _p26
    self._n27 = _p27
    self._n28 = _p28
    self._n29 = _p29
    self._n30 = _f30() if _p30 is MISSING else _p30


def init_10_AAA_0_0(self, _p0, _p1, _p2):
    _set(self, '_n0', _p0)
    _set(self, '_n1', _p1)
    _set(self, '_n2', _p2)


def init_10_AAAA_0_0(self, _p0, _p1, _p2, _p3):
    _set(self, '_n0', _p0)
    _set(self, '_n1', _p1)
    _set(self, '_n2', _p2)
    _set(self, '_n3', _p3)


def init_10_AAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4):
    _set(self, '_n0', _p0)
    _set(self, '_n1', _p1)
    _set(self, '_n2', _p2)
    _set(self, '_n3', _p3)
    _set(self, '_n4', _p4)


def init_10_AAAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5):
    _set(self, '_n0', _p0)
    _set(self, '_n1', _p1)
    _set(self, '_n2', _p2)
    _set(self, '_n3', _p3)
    _set(self, '_n4', _p4)
    _set(self, '_n5', _p5)


def init_10_AAAAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6):
    _set(self, '_n0', _p0)
    _set(self, '_n1', _p1)
    _set(self, '_n2', _p2)
    _set(self, '_n3', _p3)
    _set(self, '_n4', _p4)
    _set(self, '_n5', _p5)
    _set(self, '_n6', _p6)


def init_10_AAAAAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7):
    _set(self, '_n0', _p0)
    _set(self, '_n1', _p1)
    _set(self, '_n2', _p2)
    _set(self, '_n3', _p3)
    _set(self, '_n4', _p4)
    _set(self, '_n5', _p5)
    _set(self, '_n6', _p6)
    _set(self, '_n7', _p7)


def init_10_AAAAAAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7, _p8):
    _set(self, '_n0', _p0)
    _set(self, '_n1', _p1)
    _set(self, '_n2', _p2)
    _set(self, '_n3', _p3)
    _set(self, '_n4', _p4)
    _set(self, '_n5', _p5)
    _set(self, '_n6', _p6)
    _set(self, '_n7', _p7)
    _set(self, '_n8', _p8)


def init_10_AAAAAAAAAAAAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7, _p8, _p9, _p10, _p11, _p12, _p13, _p14):
    _set(self, '_n0', _p0)
    _set(self, '_n1', _p1)
    _set(self, '_n2', _p2)
    _set(self, '_n3', _p3)
    _set(self, '_n4', _p4)
    _set(self, '_n5', _p5)
    _set(self, '_n6', _p6)
    _set(self, '_n7', _p7)
    _set(self, '_n8', _p8)
    _set(self, '_n9', _p9)
    _set(self, '_n10', _p10)
    _set(self, '_n11', _p11)
    _set(self, '_n12', _p12)
    _set(self, '_n13', _p13)
    _set(self, '_n14', _p14)


def init_10_AAAAF_0_0(self, _p0, _p1, _p2, _p3, _p4):
    _set(self, '_n0', _p0)
    _set(self, '_n1', _p1)
    _set(self, '_n2', _p2)
    _set(self, '_n3', _p3)
    _set(self, '_n4', _f4() if _p4 is MISSING else _p4)


def init_11_AAAA_0_0(self, _p0, _p1, _p2, _p3):
    _set(self, '_n0', _p0)
    _set(self, '_n1', _p1)
    _set(self, '_n2', _p2)
    _set(self, '_n3', _p3)
    self.__post_init__()


def init_11_AAAAAAAA_0_0(self, _p0, _p1, _p2, _p3, _p4, _p5, _p6, _p7):
    _set(self, '_n0', _p0)
    _set(self, '_n1', _p1)
    _set(self, '_n2', _p2)
    _set(self, '_n3', _p3)
    _set(self, '_n4', _p4)
    _set(self, '_n5', _p5)
    _set(self, '_n6', _p6)
    _set(self, '_n7', _p7)
    self.__post_init__()
