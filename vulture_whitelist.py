"""What vulture reports as unused but is used where it cannot see: by a framework, through an import-path string,
or by the users of the documented API. `make check` runs vulture on the code and this file ([tool.vulture] in
pyproject.toml); it is not part of the package. Add only such false positives, each saying who uses it; remove dead
code instead. (Functions that a decorator registers are left out by decorator there, not listed here.)"""


class _Used:
    """Any attribute: vulture counts each ``_.name`` below as a use of every definition called ``name``."""

    def __getattr__(self, name: str) -> None:
        return None


_ = _Used()

# Imported on use through the import-path strings of the dataset registry (polypbench/datasets.py)
_.RealColonConverter  # converter="polypbench.prepare.real_colon:RealColonConverter"
_.real_colon_split  # split_generator="polypbench.splits.public:real_colon_split"
_.sun_split  # split_generator="polypbench.splits.public:sun_split"
_.real_colon_polyps  # catalog="polypbench.catalog:real_colon_polyps"

# Public API that the README and docs/ document for users (nothing in the package calls it)
_.load_hf  # polypbench.load_hf (README.md, docs/loading.md); reached through polypbench/__init__.py's lazy map
_.load_polyps  # polypbench.load_polyps (README.md, docs/loading.md); the same
_.pad_collate  # polypbench.load.pad_collate, the DataLoader collate_fn of README.md and docs/loading.md
_.for_dataset  # FramesPerPolyp.for_dataset(dataset, n, seed) (README.md, docs/loading.md)
_.significance_map  # polypbench.evaluate.ranking.significance_map (docs/scoring.md, the ranking API)

# Read by the framework or the library we hand the object to
_.command_class  # click.Group: the class of the commands a group's @command makes (cli._Group)
_.group_class  # click.Group: ``type`` makes subgroups of the group's own class (cli._Group)
_.app_from_env  # uvicorn.run("polypbench.leaderboard.app:app_from_env", factory=True): serve --workers N
_.isolation_level  # sqlite3: None turns the driver's own transaction handling off (leaderboard/db.py)
_.submissions  # SQLAlchemy: Team.submissions, the other side of Submission.team's back_populates
_.extra_repr  # torch: nn.Module.__repr__ calls it (models/gates.py Gate)
_.fc  # torchvision's ResNet.forward calls net.fc (models/resnet.py sets it to Identity: the pooled embedding)
_.ls1  # timm's vision_transformer.Block.forward calls ls1/ls2 (models/vit.py puts the HAG gates there)
_.ls2
_.benchmark  # torch.backends.cudnn.benchmark = True: a flag torch reads (benchmarks/train_bench.py)
_.ignore_aliases  # PyYAML: the Dumper hook (prepare/card.py writes repeated values out in full)
_.train_list  # torchvision's CIFAR100.__init__ reads the files to load from these (train/cifar.py)
_.test_list

# Alembic reads these module names of every migration (leaderboard/migrations/versions/)
_.revision
_.down_revision
_.branch_labels
_.depends_on
_.downgrade

# Fields read by name, never as an attribute
_.undefined_replicates  # evaluate.Stat: to_dict/from_dict walk dataclasses.fields (the JSON's key)
_.weights_bytes  # jobs.NewJob -> Job(**asdict(new)); Job.weights_bytes, a column of the jobs table
_.primary_value  # Submission.primary_value, a column of the submissions table (migration 0001), written on insert

# Read only by the report's Jinja2 templates (polypbench/templates/report.html.j2, report.md.j2)
_.caption  # report.Picture.caption, gallery.Tile.caption: figure captions
_.spread  # gallery.Entry.spread: the spread of a polyp's frame predictions
_.children  # report.Entry.children: the contents list's sub-entries

# benchmarks/demo_spread.py's reader of its own table and README block: tests/test_demo.py checks the README with them
_.parse_table
_.readme_block
