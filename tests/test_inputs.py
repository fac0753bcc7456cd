from pathlib import Path

import pytest

from deblur.errors import UsageError
from deblur.inputs import OutputOptions, plan_jobs


def names(plan_list):
    return sorted(Path(p).name for p, _ in plan_list)


def test_folder_takes_images_only_and_skips_other_files(photo_folder):
    plan = plan_jobs([str(photo_folder)], recursive=False, options=OutputOptions())
    assert sorted(j.source.name for j in plan.jobs) == ["a.jpg", "b.png"]
    assert names(plan.skipped) == ["notes.txt"]
    assert {j.output.name for j in plan.jobs} == {"a_deblur.jpg", "b_deblur.png"}
    assert all(j.output.parent == photo_folder for j in plan.jobs)


def test_recursive_folder_mirrors_the_tree_under_output(photo_folder, tmp_path):
    out = tmp_path / "restored"
    plan = plan_jobs([str(photo_folder)], recursive=True, options=OutputOptions(output_dir=out))
    outputs = sorted(str(j.output.relative_to(out)) for j in plan.jobs)
    assert outputs == ["a_deblur.jpg", "b_deblur.png", "sub/c_deblur.jpg"]


def test_quoted_glob_and_missing_paths(photo_folder):
    plan = plan_jobs([str(photo_folder / "*.jpg"), str(photo_folder / "nope.png"), str(photo_folder / "*.gif")],
                     recursive=False, options=OutputOptions())
    assert [j.source.name for j in plan.jobs] == ["a.jpg"]
    assert sorted(reason for _, reason in plan.failed) == ["no image files match this pattern",
                                                           "no such file or folder"]


def test_an_input_is_never_an_output(photo_folder):
    plan = plan_jobs([str(photo_folder / "a.jpg")], recursive=False, options=OutputOptions(suffix="", overwrite=True))
    assert not plan.jobs and "overwrite the input" in plan.failed[0][1]


def test_two_inputs_writing_one_output_are_refused(tmp_path, photo_folder):
    (photo_folder / "a.png").write_bytes((photo_folder / "b.png").read_bytes())
    plan = plan_jobs([str(photo_folder / "a.jpg"), str(photo_folder / "a.png")], recursive=False,
                     options=OutputOptions(format="png"))
    assert len(plan.jobs) == 1 and "already writes" in plan.failed[0][1]


def test_existing_results_are_never_overwritten_by_default(photo_folder):
    (photo_folder / "a_deblur.jpg").write_bytes(b"earlier result")
    explicit = plan_jobs([str(photo_folder / "a.jpg")], recursive=False, options=OutputOptions())
    assert not explicit.jobs and "--overwrite" in explicit.failed[0][1]
    # A folder re-run resumes: done photos are skipped, earlier results are not taken as inputs.
    folder = plan_jobs([str(photo_folder)], recursive=False, options=OutputOptions())
    assert [j.source.name for j in folder.jobs] == ["b.png"]
    assert "a.jpg" in names(folder.skipped) and names(folder.ignored) == ["a_deblur.jpg"]
    forced = plan_jobs([str(photo_folder / "a.jpg")], recursive=False, options=OutputOptions(overwrite=True))
    assert len(forced.jobs) == 1


def test_output_folder_inside_the_input_folder_is_not_rescanned(photo_folder):
    out = photo_folder / "restored"
    out.mkdir()
    (out / "a_other.jpg").write_bytes((photo_folder / "a.jpg").read_bytes())
    plan = plan_jobs([str(photo_folder)], recursive=True, options=OutputOptions(output_dir=out, suffix=""))
    assert all(out not in j.source.parents for j in plan.jobs)


def test_compare_image_gets_its_own_name(photo_folder):
    plan = plan_jobs([str(photo_folder / "a.jpg")], recursive=False, options=OutputOptions(compare=True))
    assert plan.jobs[0].compare.name == "a_deblur_compare.jpg"


def test_a_named_file_of_an_unsupported_kind_is_a_failure_saying_what_is_supported(photo_folder):
    (photo_folder / "anim.gif").write_bytes(b"GIF89a")
    plan = plan_jobs([str(photo_folder / "anim.gif")], recursive=False, options=OutputOptions())
    assert not plan.jobs and names(plan.failed) == ["anim.gif"]
    assert "JPEG, PNG, TIFF, WebP or BMP" in plan.failed[0][1]
    in_folder = plan_jobs([str(photo_folder)], recursive=False, options=OutputOptions())
    assert "anim.gif" in names(in_folder.skipped) and not in_folder.failed  # found in a folder: skipped


def test_an_output_file_takes_one_photo_and_names_its_companions_after_itself(photo_folder, tmp_path):
    target = tmp_path / "sharp.jpg"
    plan = plan_jobs([str(photo_folder / "b.png")], recursive=False,
                     options=OutputOptions(output_dir=target, compare=True, kernel=True))
    [job] = plan.jobs
    assert (job.output, job.compare, job.kernel) == (target, tmp_path / "sharp_compare.jpg",
                                                      tmp_path / "sharp_kernel.png")
    with pytest.raises(UsageError, match="2 photos"):
        plan_jobs([str(photo_folder / "a.jpg"), str(photo_folder / "b.png")], recursive=False,
                  options=OutputOptions(output_dir=target))
    with pytest.raises(UsageError, match="disagree"):
        plan_jobs([str(photo_folder / "b.png")], recursive=False,
                  options=OutputOptions(output_dir=target, format="png"))
    (tmp_path / "folder.jpg").mkdir()  # an existing folder is a folder, whatever its name
    plan = plan_jobs([str(photo_folder / "b.png")], recursive=False,
                     options=OutputOptions(output_dir=tmp_path / "folder.jpg"))
    assert plan.jobs[0].output == tmp_path / "folder.jpg" / "b_deblur.png"
