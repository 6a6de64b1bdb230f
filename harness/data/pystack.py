"""``pystack-v1``: the large embedded corpus (110.6 M BPE-4096 training tokens), prose and code.

Natural-language prose (36.7 % of the 362 MB of text) is the documentation of large, permissively licensed
Python projects: the eight documentation trees of the default corpus (``pydocs-v1``) plus those of Salt,
Matplotlib, Astropy, SciPy, the AWS CLI examples and six OpenStack services (with their release notes), the
English API documentation carried inside the AWS (botocore) and Google API client packages (the strings
under ``documentation`` / ``description`` of their JSON service descriptions, markup removed) and the
docstrings of the Pulumi AWS provider; each paragraph of those three once. Code is the Python (and NumPy's
C) source of twelve of those projects, files over 300 kB left out. Every source is a released PyPI source
distribution, pinned by URL and sha256, and every part's text is pinned by sha256 (``PARTS``).

Build: ``scaling data build pystack-v1`` (246 MB of downloads; 5.6 min and 0.9 GB of memory on 2 cores,
measured; resumable). Use: ``data = "pystack-v1"`` for every shard, ``data = "pystack-v1:30M"`` for the
fewest shards holding 30 M training tokens. ``scaling data info pystack-v1`` lists sources and licences.
"""

from __future__ import annotations

from dataclasses import replace

from .pydocs import SOURCES as PYDOCS_SOURCES
from .shards import ShardedCorpus
from .sources import PYPI, CorpusSource

CODE_MAX_BYTES = 300_000  # larger source files are generated tables, not code anyone wrote
_DOCS = {s.project: s for s in PYDOCS_SOURCES}


def _code(project: str, members: str, exclude: str | None = None) -> CorpusSource:
    src = _DOCS.get(project) or next(s for s in _EXTRA_ARCHIVES if s.project == project)
    return replace(src, members=members, kind="code", exclude=exclude, max_bytes=CODE_MAX_BYTES)


def _archive(project, version, path, sha256, members, licence, **kw) -> CorpusSource:
    return CorpusSource(project, version, f"{PYPI}/{path}", sha256, members, licence, **kw)


_OPENSTACK_DOCS = r"^[^/]+/((doc/source|api-ref/source|api-guide/source)/.+\.rst|releasenotes/notes/.+\.yaml)$"
_EXTRA_ARCHIVES: tuple[CorpusSource, ...] = (
    _archive(
        "salt",
        "3008.5",
        "22/59/89f6c11ac3112244712c7085ff5af4811d8cfb3c475346f2ee69c5d6db52/salt-3008.5.tar.gz",
        "0259deafd601d783721e5aa8ed10677d8c4d6cc12f5de17499af71590d593315",
        r"^[^/]+/doc/.+\.rst$",
        "Apache-2.0",
    ),
    _archive(
        "matplotlib",
        "3.11.2",
        "e7/c8/9aa712a0afb882649424dd8de8ad9aa6235e796e84c6052e8f6dc1598d0d/matplotlib-3.11.2.tar.gz",
        "cec596316640f2b394b8f0daa0ea61a8eae82d017b620b9f202befb972a59ea4",
        r"^[^/]+/doc/.+\.rst$",
        "Matplotlib licence (PSF-style, permissive)",
    ),
    _archive(
        "astropy",
        "8.0.2",
        "95/57/02089e6da0fc00846d309034ad74e13ebcadc67b1c5cef397ae0597473fa/astropy-8.0.2.tar.gz",
        "e6af35823099ad6a40b57dbe5ff845f577374ea131925c9fa4b49eeab06c5310",
        r"^[^/]+/docs/.+\.rst$",
        "BSD-3-Clause",
    ),
    _archive(
        "scipy",
        "1.18.1",
        "7e/74/66de6258867beb2ef08f35f9f2ac017a52cacd5081714d239ff1a442d458/scipy-1.18.1.tar.gz",
        "52c4b7422442aba924d03ad4019852b08a92e64ea187b933135687bfe2747307",
        r"^[^/]+/doc/source/.+\.(rst|md)$",
        "BSD-3-Clause",
    ),
    _archive(
        "awscli",
        "1.46.3",
        "6d/b5/4024da68f7096bc2041f87dfce73b07f24b9cdb0d66cbf77675dfbb290d5/awscli-1.46.3.tar.gz",
        "9b1146f4159bdf98688d900e2ffd0ac05c18f7fb28641c6b0817e64574e3ce1f",
        r"^[^/]+/awscli/(examples|topics)/.+\.rst$",
        "Apache-2.0",
    ),
    _archive(
        "botocore",
        "1.44.8",
        "65/dd/167b1459b3e1a9412d1abdde7156b48dda5b9d477beea85f05ef064e158c/botocore-1.44.8.tar.gz",
        "945b783c1a1259e2a8b078f3f3dd40fae32ea84ab01d3a9953af6b378da7108a",
        r"^[^/]+/botocore/data/[^/]+/[^/]+/service-2\.json(\.gz)?$",
        "Apache-2.0",
        reader="json-docs",
        keys=("documentation",),
    ),
    _archive(
        "google-api-python-client",
        "2.202.0",
        "22/59/70df770dd367e268f0382fc98c6976d1e210e47351f263cced5b95989ee0/google_api_python_client-2.202.0.tar.gz",
        "ae126c8e91f43c331e23dbd83bc4a8075699dd48089cebc7295f6ab2f5850fc5",
        r"^[^/]+/googleapiclient/discovery_cache/documents/.+\.json$",
        "Apache-2.0",
        reader="json-docs",
        keys=("description",),
    ),
    _archive(
        "nova",
        "34.0.0",
        "ea/3f/ca2c220052802a26302a66a3584f757d4cbaaa1d1ce88f0f4e10fc0142a1/nova-34.0.0.tar.gz",
        "919eef77cda4ce0cc4746a5853b5d9341ebd0ae37bc8b1939eb77d17727c00df",
        _OPENSTACK_DOCS,
        "Apache-2.0",
    ),
    _archive(
        "neutron",
        "29.0.0",
        "74/5a/99be86bcadfffd9f97ebc92524598c974b0eaeda505df8d9a494a1241e0c/neutron-29.0.0.tar.gz",
        "4dc123ed085a4b2cc8af1c4fa8d7162042c4e7cfa5e895f62e99a3b46d92ba31",
        _OPENSTACK_DOCS,
        "Apache-2.0",
    ),
    _archive(
        "cinder",
        "29.0.0",
        "1e/22/7669c01adcb5cad83a2e43c76ee13884d1fb102a1de98ef4029caa17b8b3/cinder-29.0.0.tar.gz",
        "6372ca98db3d7781031ce5950b44698badd6176db794ff1f74b0621be583429e",
        _OPENSTACK_DOCS,
        "Apache-2.0",
    ),
    _archive(
        "ironic",
        "39.0.0",
        "1e/1a/ee435e878370e53ff3aebef26e0cf704306c20a9589516407a3660b2d230/ironic-39.0.0.tar.gz",
        "205364829cf7ab1d03f80e4c684cf2aa6693170eae8457b9344100e43b737a5e",
        _OPENSTACK_DOCS,
        "Apache-2.0",
    ),
    _archive(
        "manila",
        "23.0.1",
        "85/43/263821b9d3cd0a767e4e88a003b592e27d93c94c86f03cefb70b34b09b89/manila-23.0.1.tar.gz",
        "8594a27326116fc9203b1381faea327ea2777a30f85cbbaa4fa29d4818efd4c9",
        _OPENSTACK_DOCS,
        "Apache-2.0",
    ),
    _archive(
        "swift",
        "2.38.3",
        "b8/76/c38bd1881c12f037071c4cfdf079279937b4099f7c7600688de64c52877e/swift-2.38.3.tar.gz",
        "561b2f8acc5ce834a0a2bac200e8ccd8784cb5c4a9e3731881d2e66dec4b6006",
        _OPENSTACK_DOCS,
        "Apache-2.0",
    ),
    _archive(
        "pulumi-aws",
        "7.51.1",
        "60/ea/27067e32f5d301e32236560e74fece12130087d3567a10903c10b805c528/pulumi_aws-7.51.1.tar.gz",
        "e858b9a329441322ef54cde220d576dde150b7bb7dd1c9f1592dbeddb0926a94",
        r"^[^/]+/pulumi_aws/.+\.py$",
        "Apache-2.0",
        reader="py-docstrings",
    ),
    _archive(
        "pandas",
        "3.1.1",
        "17/ca/24c6bc92aca3d366146358e47f1d374c0e1a50763ef226fc71eff20a63fb/pandas-3.1.1.tar.gz",
        "05fed3e3b7c99b226f160e29d7d6cb7ef39638c758cbfe42b3f24ba34f04b859",
        r"^[^/]+/pandas/.+\.(py|pyx)$",
        "BSD-3-Clause",
        kind="code",
        max_bytes=CODE_MAX_BYTES,
    ),
)

CODE_SOURCES: tuple[CorpusSource, ...] = (
    _code("Django", r"^[^/]+/(django|tests)/.+\.py$"),
    _code("SymPy", r"^[^/]+/sympy/.+\.py$"),
    _code("SQLAlchemy", r"^[^/]+/(lib|test)/.+\.py$"),
    _code("numpy", r"^[^/]+/numpy/.+\.(py|pyi|c|h)$"),
    _code("Twisted", r"^[^/]+/src/.+\.py$"),
    _code("salt", r"^[^/]+/(salt|tests)/.+\.py$"),
    _code("astropy", r"^[^/]+/astropy/.+\.py$"),
    _code("scipy", r"^[^/]+/scipy/.+\.(py|pyx)$"),
    _code("matplotlib", r"^[^/]+/(lib|galleries)/.+\.py$"),
    _code("nova", r"^[^/]+/nova/.+\.py$"),
    _code("neutron", r"^[^/]+/neutron/.+\.py$"),
)

# What each part's text is (checked on every build; also gives the composition before a build).
PARTS: dict[str, dict] = {
    "Django-5.1.4-prose": {
        "sha256": "476914d2a3c44851633112cdf8e1bc7d6bf5e9387055d2a7614600df7f92e1e5",
        "documents": 605,
        "text_bytes": 5924542,
    },
    "SQLAlchemy-2.0.36-prose": {
        "sha256": "786db94c44c1608d75753ecf6cb95d2b36c89bfb1bcbf4af2dee39b4ae391078",
        "documents": 187,
        "text_bytes": 5214450,
    },
    "numpy-2.1.3-prose": {
        "sha256": "2b0dbf289cfba1b2417c78024a3d648e8b6059adb128170c5f858924d9bcb3fe",
        "documents": 477,
        "text_bytes": 4823632,
    },
    "Sphinx-8.1.3-prose": {
        "sha256": "d69b394ac924e728c010639493e1671751161c01f57a2bb67d8f1fafe90fabbc",
        "documents": 149,
        "text_bytes": 1290094,
    },
    "SymPy-1.13.3-prose": {
        "sha256": "d51fbd63584d3e73c67919f3d19927ce5c697dd118f306e93a6e7d223f0cf2c4",
        "documents": 309,
        "text_bytes": 1823585,
    },
    "Twisted-24.11.0-prose": {
        "sha256": "b10c47dfb9343ce8679b60dc6ec0ddea1f24f423d0a43834167d450bb21d4e62",
        "documents": 146,
        "text_bytes": 1217915,
    },
    "Celery-5.4.0-prose": {
        "sha256": "d35beddc613f01aaf5ae67390d504f6b23f16f7ba03166842b49a4b2c395f4ad",
        "documents": 223,
        "text_bytes": 1305215,
    },
    "docutils-0.21.2-prose": {
        "sha256": "9b06c1bf1b5f5b0c0ac32bdeb4dd6476f8479b6f2bbbc9d60193ee9805eb234f",
        "documents": 54,
        "text_bytes": 1297742,
    },
    "salt-3008.5-prose": {
        "sha256": "6b9b91ea304611b6c0ed13a5907f1ef8c3eedf76bdc2c74879569a1145343c8a",
        "documents": 1138,
        "text_bytes": 7453762,
    },
    "matplotlib-3.11.2-prose": {
        "sha256": "375e810a2e5bc3057f279b898db67837f388fab325d554c3b94205bcbf51c836",
        "documents": 356,
        "text_bytes": 2994102,
    },
    "astropy-8.0.2-prose": {
        "sha256": "16845117a62c8ac79c1f72ee2d21a50e3d8f0f437117ec10e82e4cc6126d7029",
        "documents": 301,
        "text_bytes": 2482781,
    },
    "scipy-1.18.1-prose": {
        "sha256": "a21689015c9e9e3b898892ac82007e141cc7291fa9ce0c7a08415ee6051904a4",
        "documents": 433,
        "text_bytes": 3498723,
    },
    "awscli-1.46.3-prose": {
        "sha256": "86e7c53cc989570a326873ad80d2ce82e408ab742705351ecf2c32a31a990226",
        "documents": 5855,
        "text_bytes": 8038629,
    },
    "botocore-1.44.8-prose-json-docs": {
        "sha256": "d1aa2f9105815f9ab5f7dc1478e872077b2f9f47b879fb8ccf908c086c54d24a",
        "documents": 477,
        "text_bytes": 31331178,
    },
    "google-api-python-client-2.202.0-prose-json-docs": {
        "sha256": "4b967742d3745f9d5a7c256e0dea33bd0f46a6b4af2bde8fbddbbb67c58e129d",
        "documents": 543,
        "text_bytes": 17663282,
    },
    "nova-34.0.0-prose": {
        "sha256": "0a59d7673bbf04be3581cacfa9583ecd9fb5efb2c0645e52ab26052aa1d79eaa",
        "documents": 1395,
        "text_bytes": 2349169,
    },
    "neutron-29.0.0-prose": {
        "sha256": "50f88b38979b4f8dbdd45bf76c8becc2628947b42dd113fa6baeddc4c7aa9f82",
        "documents": 934,
        "text_bytes": 2636089,
    },
    "cinder-29.0.0-prose": {
        "sha256": "c2fb06727a01e183d5c00b4ca8f23e4d28b0c49be267d792c29672a5ccc9db9c",
        "documents": 1662,
        "text_bytes": 1990323,
    },
    "ironic-39.0.0-prose": {
        "sha256": "31d918fc657f34ace5014636cacdfeafffb568c5688a105e2643470b2ac9d066",
        "documents": 1836,
        "text_bytes": 1986219,
    },
    "manila-23.0.1-prose": {
        "sha256": "31373f34de8b9db87b6576a734741d06a2d62223803d9f917c1aa3ae88b467a6",
        "documents": 1008,
        "text_bytes": 1721611,
    },
    "swift-2.38.3-prose": {
        "sha256": "7e530337c9a7263d7bd3ed9b8becb8d7d001952678de4adb809dc102ccbd113c",
        "documents": 166,
        "text_bytes": 1205484,
    },
    "pulumi-aws-7.51.1-prose-py-docstrings": {
        "sha256": "2ac82d6272397b8c84ce77d03d45adea288a45512cbe9cd36a5fcb0008c28967",
        "documents": 2876,
        "text_bytes": 24542915,
    },
    "pandas-3.1.1-code": {
        "sha256": "86d168bf58243a6a61b5027fd6f8eb250e2415a9b95bb3f82b7ef8a19366730d",
        "documents": 1369,
        "text_bytes": 24504050,
    },
    "Django-5.1.4-code": {
        "sha256": "3705498644db94216a16fddb75bb3ac8b677f8d43163ec2123fa8ec2e4415f6e",
        "documents": 2192,
        "text_bytes": 16975499,
    },
    "SymPy-1.13.3-code": {
        "sha256": "80d5ab49f5ab0a1b03f08cb96b70a558d8211f2441c68a35fafed0660fdf245b",
        "documents": 1435,
        "text_bytes": 24862621,
    },
    "SQLAlchemy-2.0.36-code": {
        "sha256": "57a302ca931e510fa8d8975b95034f79c6807940071705bd6b1de51102865e23",
        "documents": 584,
        "text_bytes": 18438413,
    },
    "numpy-2.1.3-code": {
        "sha256": "7f91fdfd8aef2d68ebf6fe6ba5c1eeb0b695fd0835d2fa7055748a26a4d5218b",
        "documents": 1149,
        "text_bytes": 17903050,
    },
    "Twisted-24.11.0-code": {
        "sha256": "7bdaa5e749c38cada6b9277a840d71c8dfebce2b282761184cd304471b006acc",
        "documents": 852,
        "text_bytes": 12610107,
    },
    "salt-3008.5-code": {
        "sha256": "776da8af3c82971002170bbb9df8d9d53a8c004583ac5a5c52a538403a5e2184",
        "documents": 2635,
        "text_bytes": 32880822,
    },
    "astropy-8.0.2-code": {
        "sha256": "f4af0044a23f675c97bd6788314a647e879c740d13b19d84140382c1a01c833b",
        "documents": 939,
        "text_bytes": 14400888,
    },
    "scipy-1.18.1-code": {
        "sha256": "f90abfa495b04167b1a4982d7d2f28075cea1eeec50440107841d908a7c74901",
        "documents": 950,
        "text_bytes": 20255775,
    },
    "matplotlib-3.11.2-code": {
        "sha256": "d30be413769a188d3d39b99c8ee1cac01a2356f1ad6efbe698b9516b29df8289",
        "documents": 871,
        "text_bytes": 9052371,
    },
    "nova-34.0.0-code": {
        "sha256": "9b62a2cb3bb0666116840c83e59edce49c2b1718b12ef4b593841878860f5299",
        "documents": 1408,
        "text_bytes": 19141558,
    },
    "neutron-29.0.0-code": {
        "sha256": "9aa93ae1956001257462986d56927957c5b70bb6e9ff09e9468816c6ceb0a784",
        "documents": 1689,
        "text_bytes": 18197501,
    },
}

PYSTACK = ShardedCorpus(
    name="pystack-v1",
    description="documentation (prose) and source code (Python, C) of large Python projects, from PyPI sdists",
    sources=(*PYDOCS_SOURCES, *_EXTRA_ARCHIVES, *CODE_SOURCES),
    parts=PARTS,
)
