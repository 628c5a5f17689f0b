"""Test-session settings and the two test tiers.

Tiers (README: Tests). `python -m pytest -q -n 2` runs the *fast* tier, a few minutes on 2 cores: unit tests
and one smoke test per capability. `python -m pytest -q -n 2 -m slow` runs everything else (learning,
multi-process, fault injection, every adapter, the full golden set); `.ci/run` runs both. Which tier a test
is in is decided here, per file, by `TIERS` below, not by marks in the test files: a file is "fast" (all of
its tests), "slow" (all of them), or a set of test names that are fast (the rest of that file is slow). A
test file missing from the table is a collection error, so each new file gets a tier on purpose.

Hangs fail one test, not the run: every test has a time limit (pytest-timeout, thread method, so a test
stuck inside XLA is ended too): `FAST_TIMEOUT` in the fast tier, `SLOW_TIMEOUT` in the slow one.

No persistent JAX compilation cache: measured on 2 cores (2026-12-02), the fast tier took 113 s without one,
138 s with an empty cache (writing it) and 114 s with a warm one. Tracing and lowering, not XLA's compile,
dominate these small programs.
"""

from __future__ import annotations

import pathlib

import jax
import pytest

from purejaxppo.cpu import configure

# The test session uses the CLI's CPU settings (XLA scheduler flag, unrolled threefry): importing purejaxppo
# changes nothing global, so configure them here, before any JAX computation (see purejaxppo/cpu/__init__.py).
_CPU = configure()

if _CPU["scheduler_flag"] == "too-late" and jax.default_backend() == "cpu":
    # Without the flag, vmapped trainings on CPU can deadlock (seen in this suite): stop now rather than hang.
    pytest.exit(
        "tests/conftest.py: purejaxppo.cpu.configure() came too late for XLA_FLAGS: importing purejaxppo already "
        "ran a JAX computation (a module-level jnp array, e.g. _GH_X/_GH_W in purejaxppo/core/distributions.py; "
        "tests/test_xla_flags.py::test_import_starts_no_jax_backend checks this). To run anyway, set XLA_FLAGS="
        "--xla_cpu_enable_concurrency_optimized_scheduler=false (or PUREJAXPPO_KEEP_XLA_FLAGS=1) yourself.",
        returncode=3,
    )

FAST_TIMEOUT = 300  # seconds; the slowest fast test takes ~15 s (measured: 827 tests in 87-122 s on 2 cores)
SLOW_TIMEOUT = 1200  # the SIGKILL-and-resume tests take ~2 min alone, more when both cores are busy

TIERS: dict[str, str | set[str]] = {
    # unit tests, every one
    "test_config.py": "fast",
    "test_stats.py": "fast",
    "test_compare_stats.py": "fast",  # benchmarks/compare.py's pure parts (order, pair ratios, CI, specs)
    "test_recipes_bench.py": {  # benchmarks/recipes.py's pure parts and the ScaleReward wrapper; the training slow
        "test_valid_curves_blank_the_placeholder_before_each_runs_first_episode",
        "test_smooth_is_a_trailing_mean_and_nan_while_the_window_is_incomplete",
        "test_target_is_ninety_percent_of_the_improvement_for_either_sign",
        "test_steps_to_target_counts_updates_to_the_first_crossing_and_inf_when_never",
        "test_steps_text_counts_seeds_that_reach_and_marks_a_censored_median",
        "test_render_keeps_every_recorded_section_in_experiment_order",
        "test_scale_reward_scales_the_reward_and_keeps_the_unscaled_one_as_the_score",
        "test_scale_reward_keeps_an_inner_score_and_refuses_a_zero_scale"},
    "test_pbt_bench.py": "fast",  # benchmarks/pbt.py's pure parts (the score window, the comparison and its CIs)
    "test_paper_atari_bench.py": "fast",  # benchmarks/paper_atari.py's comparison with the published curve (no EnvPool)
    "test_faults_config.py": "fast",
    "test_gae.py": "fast",
    "test_distributions.py": "fast",
    "test_sweep_report.py": "fast",
    "test_progress.py": {"test_fires_every_log_every_updates_and_after_the_last",
                         "test_vmap_with_axis_name_one_call_per_logged_update_with_all_seeds",
                         "test_vmap_without_axis_name_one_call_per_seed_aggregated_to_one_report",
                         "test_reporter_aggregates_gathered_calls_and_prints_one_line_per_update",
                         "test_off_means_no_callback_in_the_program", "test_off_means_no_callback_in_the_real_chunk_program",
                         "test_reporter_rejects_unknown_style"},
    "test_normalization.py": {"test_running_stats_equal_numpy_over_all_data", "test_merge_of_two_batches_equals_one_batch",
                              "test_normalize_clips", "test_reward_scaling_matches_plain_loop"},
    "test_losses.py": "fast",
    # issue 33's recipes: the network, config and statistics checks fast; trainings, runs and jaxpr scans slow
    "test_recipes.py": {"test_layer_norm_adds_a_layer_norm_after_each_hidden_layer_and_nothing_else[mlp]",
                        "test_layer_norm_adds_a_layer_norm_after_each_hidden_layer_and_nothing_else[gru]",
                        "test_layer_norm_makes_the_mlp_invariant_to_the_scale_of_a_hidden_layer",
                        "test_matmul_precision_refuses_an_unknown_name",
                        "test_privileged_inputs_reach_only_the_critic[mlp-obs,privileged]",
                        "test_privileged_inputs_reach_only_the_critic[gru-obs,privileged]",
                        "test_same_keys_for_both_heads_give_the_network_of_the_whole_observation",
                        "test_malformed_obs_keys_are_refused_naming_the_field",
                        "test_privileged_wrapper_adds_the_full_state_to_the_masked_observation",
                        "test_popart_statistics_update_and_rescale_by_hand",
                        "test_popart_statistics_are_those_of_the_union_of_the_data_parallel_shards",
                        "test_popart_finds_the_value_layer_of_every_built_in_network_and_refuses_a_network_without_one",
                        "test_popart_off_leaves_no_statistics_in_the_state",
                        "test_each_env_steps_with_its_own_params",
                        "test_randomization_is_refused_where_it_cannot_apply"},
    # train -> checkpoint -> stop -> resume bit-identical on a tiny budget, and the checkpoint format
    "test_checkpoint.py": "fast",
    # population-based training: the pure exploit/explore step, its config and spec checks (the runs are slow)
    "test_pbt.py": {"test_exploit_copies_exactly_the_chosen_members_learner_and_nothing_else",
                    "test_nan_and_diverged_members_are_always_replaced_and_never_sources",
                    "test_explore_keeps_hyperparameters_in_range", "test_initial_draws_lie_in_range_and_differ",
                    "test_copy_learner_under_vmap_collectives_equals_the_batched_copy",
                    "test_run_axis_name_is_the_runs_vmap_axis", "test_pbt_config_checks_and_round_trips",
                    "test_train_source_records_the_population_and_rebuilds_a_pbt_train",
                    "test_spec_validation_names_the_field_and_the_fix",
                    "test_cli_errors_before_compiling_and_writes_nothing", "test_yaml_form_and_flags_make_the_same_spec",
                    "test_divergences_from_metric_rows_end_at_a_replacement_and_may_recur"},
    # one golden bit-identity case (tests/golden.py runs all of them in the slow tier)
    "test_golden.py": {"test_references_are_stored_and_name_their_machine",
                       "test_run_reproduces_the_golden_references[cartpole]"},
    # the train function: structure, determinism, init/update composition, a user's network factory
    "test_train.py": {"test_output_structure", "test_same_key_same_result_different_key_different",
                      "test_init_update_compose_to_train", "test_custom_network_factory_is_used",
                      "test_permutation_is_a_permutation_and_deterministic", "test_permutation_is_uniform"},
    # one 2-device emulated data-axis update, plus the collectives and mesh parsing
    "test_parallel.py": {"test_reductions_over_the_axis_equal_the_union", "test_single_device_reductions_are_the_plain_ones",
                         "test_device_keys_differ_per_device_and_are_the_key_on_one_device",
                         "test_data_parallel_update_is_the_update_on_the_union_of_the_device_minibatches[True]",
                         "test_parse_mesh_and_errors", "test_default_mesh_shape_prefers_seeds",
                         "test_bad_mesh_shapes_name_the_field"},
    # one recurrent update (the first epoch's replay equals the rollout), carries and episode boundaries
    "test_recurrent.py": {"test_recurrent_network_shapes_and_carry", "test_recurrent_config_needs_whole_env_sequences_per_minibatch",
                          "test_carry_never_leaks_across_an_episode_boundary",
                          "test_first_epoch_replay_equals_the_rollout[gru]", "test_masked_tasks_hide_the_velocities"},
    # one sweep of 2 x 2 settings (two programs) from the CLI, its report and groups; validation before compiling
    "test_sweep.py": {"test_cli_sweep_writes_groups_metrics_and_report", "test_report_command_rewrites_the_same_report",
                      "test_a_group_folder_is_an_ordinary_run", "test_bad_sweeps_are_one_line_errors_before_any_folder",
                      "test_bad_sweep_file", "test_random_search_draws_are_reproducible_and_in_range",
                      "test_a_sweep_too_large_for_memory_is_refused_before_compiling"},
    # one masked env: masked distributions and a rollout that never takes a masked action
    "test_masks_multidiscrete.py": {"test_masked_action_is_never_sampled_even_when_its_logit_is_largest",
                                    "test_entropy_counts_only_the_legal_actions",
                                    "test_masked_log_prob_kl_and_gradients_are_finite",
                                    "test_a_row_with_no_legal_action_falls_back_to_uniform",
                                    "test_multicategorical_is_the_product_of_its_categoricals",
                                    "test_agent_mask_errors_name_the_problem", "test_multidiscrete_space_and_spec",
                                    "test_observation_normalizer_skips_the_mask_and_keeps_the_rest_per_leaf",
                                    "test_policy_in_a_rollout_never_takes_a_masked_action[nvec0]"},
    # one adapter's semantics when its extra is installed (skips otherwise); every adapter's names and errors
    "test_adapter_xminigrid.py": {"test_truncation_termination_and_final_observation",
                                  "test_unknown_name_and_xland_need_a_ruleset", "test_missing_library_names_the_extra"},
    "test_adapter_navix.py": {"test_names_and_observations", "test_missing_library_names_the_extra"},
    "test_adapter_jumanji.py": {"test_names_and_errors"},
    "test_adapter_craftax.py": {"test_unknown_name_and_missing_library"},
    "test_adapter_playground.py": {"test_unknown_name_lists_the_registry", "test_missing_library_names_the_extra",
                                   "test_termination_and_dict_obs_on_fake_env"},
    "test_envpool.py": {"test_names_options_spaces_and_errors", "test_missing_library_names_the_extra",
                        "test_time_limit_truncates_and_hides_the_next_step_reset_cartpole",
                        "test_gae_returns_and_bootstrap_equal_a_plain_numpy_computation",
                        "test_a_stale_pool_id_never_steps_another_pool", "test_an_evicted_pool_restarts_with_a_warning"},
    "test_brax.py": {"test_parse_brax_name", "test_missing_brax_names_the_field_and_the_fix",
                     "test_gymnax_names_unaffected"},
    # the multi-process launcher's failure report (its real 2-process runs are slow)
    "test_distributed.py": {"test_launcher_shows_the_output_of_a_worker_that_ended_before_worker_0_failed"},
    "test_render.py": "fast",
    # a user's own env, network and objective by its builder: in process (the CLI, SIGKILL, sweep, 2 processes: slow)
    "test_build.py": {"test_a_built_run_records_its_builder_resumes_bit_identically_and_loads",
                      "test_a_bad_builder_is_one_error_naming_it_before_any_folder_exists",
                      "test_a_train_object_without_a_builder_must_be_given_again",
                      "test_the_program_cache_tells_objectives_of_the_same_name_apart",
                      "test_train_run_changes_no_process_wide_setting"},
    # the layers: the import contract and no import cycles
    "test_layout.py": "fast",
    # patches convolutions against XLA's (the two-implementation training comparison: slow; so is the vmapped
    # Nature 8x8/4 case, ~5 s of compile: fast are its unvmapped equality and the vmapped 3x3 cases)
    "test_conv.py": {"test_same_padding_is_xlas", "test_output_and_gradients_equal_xla_conv",
                     "test_vmapped_over_seeds_equals_xla_and_has_no_convolution[minatar_3x3_s1_same]",
                     "test_vmapped_over_seeds_equals_xla_and_has_no_convolution[odd_3x3_s2_same]",
                     "test_patchconv_module_is_nn_conv",
                     "test_config_field", "test_networks_have_the_same_parameter_tree_either_way"},
    # the fused GRU/LSTM cells against flax's: parameters, steps, sequences with resets, gradients (the network
    # twin and the short training: slow)
    "test_rnn_cells.py": {"test_parameters_and_initial_values_are_flax_s", "test_one_step_equals_flax_s_cell_with_gradients",
                          "test_sequence_with_resets_equals_scanned_flax_cell_with_gradients"},
    # cuda/tpu lowering from shapes (jax.export): no CPU-only custom calls, host callbacks only where expected
    "test_lowering.py": "fast",
    # run identity: ids everywhere and one refusal (the other files, load/eval and older folders: slow)
    "test_run_identity.py": {"test_a_run_names_its_id_everywhere_and_its_checkpoints_digest_the_metrics",
                             "test_another_runs_file_is_refused_naming_it_and_nothing_changes[checkpoint]"},
    # the error hierarchy and the CLI's one-line vs traceback rule (the checkpointed-bug case trains: slow)
    "test_errors.py": {"test_every_error_is_a_purejaxppo_error_and_keeps_its_builtin_base",
                       "test_the_package_raises_no_bare_builtin_error", "test_a_purejaxppo_error_is_one_line_and_exit_2",
                       "test_an_internal_error_keeps_its_traceback_and_says_what_the_folder_holds"},
    "test_interfaces.py": {"test_reset_carry_replaces_only_finished_envs",
                           "test_evaluate_and_episode_rollout_act_through_the_agent_with_its_carry",
                           "test_episode_rollout_matches_a_plain_python_loop"},
    "test_envs_networks.py": {"test_cnn_chosen_for_minatar_and_output_shapes", "test_mlp_depth_width_activation",
                              "test_nature_cnn_chosen_for_atari_frames_shapes_and_parameter_count",
                              "test_nature_cnn_scales_uint8_by_255_and_reads_channels_first",
                              "test_mlp_default_is_the_papers_mujoco_network",
                              "test_sample_from_noise_matches_the_distribution"},
    "test_gaps.py": {"test_explained_variance_reference_points", "test_explained_variance_matches_numpy_on_random_data",
                     "test_make_optimizer_clips_by_the_global_norm", "test_normalize_zero_mean_unit_std_and_affine_invariant",
                     "test_ppo_loss_normalizes_advantages_within_the_minibatch"},
    # the CLI's input errors and run-folder names and locks (no training)
    "test_cli.py": {"test_bad_config_input", "test_build_reaches_train_run_sweep_run_and_every_worker"},
    "test_run_folder.py": {"test_default_folder_names_are_unique_within_one_second",
                           "test_the_lock_dies_with_a_killed_process"},
    "test_xla_flags.py": {"test_import_starts_no_jax_backend",
                          "test_parse_version", "test_flag_range", "test_configure_outside_version_range_does_nothing",
                          "test_configure_inside_version_range_sets_flag", "test_decide_order",
                          "test_threefry_statuses_in_process"},
    # slow: learning, multi-process, fault injection, adapters' training, the README's blocks, probes
    "test_objectives.py": "slow",
    "test_probes.py": "slow",
    "test_learning.py": "slow",
    "test_faults_run.py": "slow",
    # the docs' examples are found and the generated references complete (the examples themselves train: slow)
    "test_docs.py": {"test_every_page_has_its_examples_found", "test_generated_references_cover_every_field_and_suite"},
    "test_stats_rliable.py": "slow",
}


def _tier(path: pathlib.Path) -> str | set[str]:
    try:
        return TIERS[path.name]
    except KeyError:
        raise pytest.UsageError(f"tests/conftest.py: {path.name} has no tier; add it to TIERS ('fast', 'slow' or "
                                "the set of its fast tests)") from None


def _is_slow(item: pytest.Item) -> bool:
    tier = _tier(item.path)
    if isinstance(tier, set):
        return item.name not in tier and getattr(item, "originalname", item.name) not in tier
    return tier == "slow"


def pytest_ignore_collect(collection_path: pathlib.Path, config: pytest.Config):
    """Skip importing a wholly slow file when the run deselects the slow tier anyway (the adapters' imports alone
    take seconds): the same tests run, collection is faster."""
    if (collection_path.suffix == ".py" and collection_path.name.startswith("test_")
            and config.getoption("markexpr", "") == "not slow" and _tier(collection_path) == "slow"):
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    for item in items:
        slow = _is_slow(item)
        if slow:
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT if slow else FAST_TIMEOUT))
