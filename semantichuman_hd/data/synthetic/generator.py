"""The synthetic clothed-human dataset: per-sample pipeline and the parallel driver.

Sample ``i`` of a dataset with seed ``s`` depends only on ``(s, i)``:

1. **Outfit** — :func:`~.outfits.sample_outfit` from a numpy generator seeded by ``(s, i)``.
2. **Shape and pose** — betas ``N(0, 1)`` clipped to ±:data:`BETA_CLIP`; a body pose from
   :func:`~semantichuman_hd.body.body_model.random_plausible_pose` (legs calmer under skirts), redrawn
   while an arm passes through the trunk; a global orientation mostly facing the camera (yaw within
   ±:data:`FRONT_YAW`) with some side and back views.
3. **Geometry** — the body and every garment posed with the body model (:mod:`.garments`), then
   centred (``transl``) and scaled to fill most of the frame (``scale`` within :data:`SCALE_RANGE`);
   the label records both, so ``scale · (BodyModel(betas, body_pose, global_orient, transl) vertices)``
   is the rendered body (to float32 rounding).
4. **Rendering** — the fixed camera (:func:`~semantichuman_hd.rendering.cameras.fixed_camera`),
   z-buffer rasterization (:mod:`~semantichuman_hd.rendering.rasterizer`): a label map and a normal
   map (world frame, unit normals facing the camera, as the volume renderer's) at the pixel centres,
   and an image shaded with Lambert + ambient light from the procedural materials, supersampled for
   anti-aliasing. Label maps are never blended.

:func:`generate_dataset` writes a dataset folder through :mod:`semantichuman_hd.data.format`
(workers write the pictures, the parent the index, atomically).
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ...checks import check_non_negative_int, check_positive_int, renamed_argument
from ...body.body_model import BodyModel, canonical_body_pose, random_plausible_pose
from ...body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from ...body.smpl_format import NUM_BETAS, SMPL_JOINT_NAMES
from ...parts import PARTS
from ...rendering.cameras import fixed_camera
from ...rendering.rasterizer import interpolate, rasterize
from ..format import INDEX_FILE, DatasetFormatError, write_index, write_sample
from .garments import BodyState, BodyTopology, BuildContext, MeshPiece, body_state, build_garment, vertex_normals
from .outfits import OutfitSpec, sample_outfit
from .textures import Material, evaluate_material

__all__ = [
    "GENERATOR_NAME",
    "GENERATOR_VERSION",
    "RenderedSample",
    "SampleSpec",
    "SyntheticHumanGenerator",
    "export_part_meshes",
    "generate_dataset",
]

GENERATOR_NAME: str = "semantichuman-hd-synthetic"
"""Value of ``extras["generator"]`` in the labels this module writes."""

GENERATOR_VERSION: int = 1
"""Bump when the same (seed, index) would produce a different sample."""

BETA_CLIP: float = 2.0
"""Shape coefficients are drawn from N(0, 1) and clipped to ± this."""

FRONT_YAW: float = math.radians(30.0)
"""Yaw range (±) of front views."""
SIDE_YAW: tuple[float, float] = (math.radians(55.0), math.radians(100.0))
"""Yaw range (either sign) of side views."""
BACK_YAW: float = math.radians(25.0)
"""Yaw range (±) around 180° of back views."""
VIEW_PROBABILITIES: tuple[float, float, float] = (0.75, 0.15, 0.1)
"""Probabilities of front, side and back views."""
TILT: float = math.radians(4.0)
"""Small random pitch and roll (±) of the whole body."""

POSE_DAMPING: dict[str, float] = {
    "spine1": 0.35, "spine2": 0.35, "spine3": 0.35, "neck": 0.5, "head": 0.5,
    "left_hip": 0.6, "right_hip": 0.6, "left_knee": 0.5, "right_knee": 0.5,
}
"""Fashion-photo poses: the random plausible pose's angles of these joints are scaled by these factors
(people stand upright, as in DeepFashion)."""
LEG_DAMPING_UNDER_SKIRT: float = 0.5
"""Hip and knee angles are scaled further by this under skirts, dresses and long coats."""
ARMS_DOWN_PROBABILITY: float = 0.8
"""Probability that the arms hang down (shoulder lowering drawn from :data:`ARMS_DOWN_RANGE`)."""
ARMS_DOWN_RANGE: tuple[float, float] = (0.75, 1.35)
"""Range of the shoulder lowering (radians about z) of hanging arms."""
ARM_SWING_DAMPING: float = 0.5
"""Forward/backward swing of hanging arms is scaled by this."""
MAX_POSE_TRIES: int = 16
"""Poses are redrawn at most this many times while an arm passes through the trunk."""
TORSO_SHRINK: float = 0.8
"""The trunk cross-section used by the arm test is shrunk by this (arms may touch the trunk)."""
FALLBACK_SHOULDER: float = 1.1
"""Shoulder angle (radians, arms lowered away from the trunk) of the pose used if no draw passes."""

FRAME_EXTENT: float = 1.9
"""Target extent (metres) of the clothed person's bounding box (its larger side) in the fixed camera's
frame, which spans about 2.2 m: people fill most of the picture, as in DeepFashion crops. The label's
``smpl.scale`` does this, within :data:`SCALE_RANGE`."""
SCALE_RANGE: tuple[float, float] = (0.8, 1.2)
"""Allowed range of ``smpl.scale``."""

AMBIENT: tuple[float, float] = (0.38, 0.5)
"""Range of the ambient light."""
DIFFUSE: tuple[float, float] = (0.5, 0.7)
"""Range of the directional (Lambert) light."""
DEFAULT_IMAGE_SIZE: int = 256
"""Default image side in pixels (the paper's stage-1 size)."""

DEFAULT_SUPERSAMPLING_LIMIT: int = 512
"""Images up to this size are rendered at 2× and averaged (anti-aliasing); larger ones at 1×."""

LABEL_DECIMALS: int = 6
"""SMPL label values are rounded to this many decimals when drawn (before rendering), so the label
written to ``dataset.json`` is exactly the one rendered."""

_J = {name: index for index, name in enumerate(SMPL_JOINT_NAMES)}


def _round(tensor: torch.Tensor) -> torch.Tensor:
    """Values rounded to :data:`LABEL_DECIMALS` (float64), as stored in the label."""
    return torch.round(tensor.double(), decimals=LABEL_DECIMALS)


# ----------------------------------------------------------------------------------------------------
# Sample specifications
# ----------------------------------------------------------------------------------------------------


@dataclass
class SampleSpec:
    """Everything that defines one synthetic sample (the outfit and the SMPL label).

    Parameters:
        outfit: The outfit.
        betas: ``(10,)`` shape.
        body_pose: ``(69,)`` axis-angle body pose.
        global_orient: ``(3,)`` axis-angle root orientation.
        transl: ``(3,)`` translation.
        scale: Uniform scale (posed vertices are ``scale · (SMPL + transl)``).
        seed: Dataset seed (None when built by hand).
        index: Sample index (None when built by hand).
    """

    outfit: OutfitSpec
    betas: np.ndarray
    body_pose: np.ndarray
    global_orient: np.ndarray
    transl: np.ndarray
    scale: float = 1.0
    seed: int | None = None
    index: int | None = None

    def smpl_label(self) -> dict:
        return {
            "scale": float(self.scale),
            "transl": [float(v) for v in self.transl],
            "global_orient": [float(v) for v in self.global_orient],
            "body_pose": [float(v) for v in self.body_pose],
            "betas": [float(v) for v in self.betas],
        }

    def extras(self) -> dict:
        """The label extras that let :meth:`from_label` rebuild this sample."""
        return {
            "generator": GENERATOR_NAME,
            "version": GENERATOR_VERSION,
            "seed": self.seed,
            "index": self.index,
            "parts": [part for part in PARTS if part in self.outfit.parts],
            "outfit": self.outfit.to_dict(),
        }

    @classmethod
    def from_label(cls, label: Mapping[str, Any]) -> "SampleSpec":
        """The spec of a sample from its dataset label (``{"smpl": …, "extras": …}``).

        Raises:
            ValueError: If the label was not written by this generator.
        """
        extras = label.get("extras") or {}
        if extras.get("generator") != GENERATOR_NAME or "outfit" not in extras:
            raise ValueError(f"`label` must come from the synthetic generator (extras.generator = {GENERATOR_NAME!r} with an outfit).")
        smpl = label["smpl"]
        return cls(
            outfit=OutfitSpec.from_dict(extras["outfit"]),
            betas=np.asarray(smpl["betas"], dtype=np.float64),
            body_pose=np.asarray(smpl["body_pose"], dtype=np.float64),
            global_orient=np.asarray(smpl["global_orient"], dtype=np.float64),
            transl=np.asarray(smpl["transl"], dtype=np.float64),
            scale=float(smpl.get("scale", 1.0)),
            seed=extras.get("seed"),
            index=extras.get("index"),
        )


@dataclass
class RenderedSample:
    """One rendered sample.

    Parameters:
        image: ``(R, R, 3) uint8`` RGB on white.
        segm: ``(R, R) uint8`` labels (0 background, ``k + 1`` part k).
        normals: ``(R, R, 3) float32`` world-frame unit normals facing the camera (0 on background).
        camera: ``{"cam2world": (4, 4), "intrinsics": (3, 3)}`` lists.
        spec: The sample's :class:`SampleSpec`.
    """

    image: np.ndarray
    segm: np.ndarray
    normals: np.ndarray
    camera: dict
    spec: SampleSpec


@dataclass
class Scene:
    """All mesh pieces of a sample, merged.

    Attributes:
        vertices: ``(N, 3)`` posed positions (float64).
        texcoords: ``(N, 3)`` canonical rest coordinates (texture space).
        normals: ``(N, 3)`` posed vertex normals.
        faces: ``(F, 3)``.
        face_part: ``(F,)`` part index.
        face_material: ``(F,)`` index into ``materials``.
        materials: The materials.
    """

    vertices: np.ndarray
    texcoords: np.ndarray
    normals: np.ndarray
    faces: np.ndarray
    face_part: np.ndarray
    face_material: np.ndarray
    materials: list[Material]


# ----------------------------------------------------------------------------------------------------
# The generator
# ----------------------------------------------------------------------------------------------------


def _rotation_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


class SyntheticHumanGenerator:
    """Samples and renders synthetic clothed humans.

    Parameters:
        image_size: Image side R in pixels (square).
        supersample: Anti-aliasing factor of the image (default 2 up to
            :data:`DEFAULT_SUPERSAMPLING_LIMIT`, else 1).
        body: The body model (default: the open body).
        resolution: Deprecated name of ``image_size``.

    Raises:
        ValueError: For a non-positive image size or supersampling factor.
    """

    def __init__(
        self, image_size: int = DEFAULT_IMAGE_SIZE, supersample: int | None = None, body: BodyModel | None = None, resolution: int | None = None
    ):
        argument = "image_size" if resolution is None else "resolution"
        image_size = renamed_argument(image_size, resolution, "image_size", "resolution", default=DEFAULT_IMAGE_SIZE)
        self.image_size = check_positive_int(image_size, argument)
        if supersample is None:
            supersample = 2 if image_size <= DEFAULT_SUPERSAMPLING_LIMIT else 1
        self.supersample = check_positive_int(supersample, "supersample")
        self.body = body if body is not None else BodyModel.open()
        self.body.eval()
        self.topology = BodyTopology.from_body_model(self.body)
        self.template_state = body_state(self.body, self.topology)
        self.canonical_state = body_state(self.body, self.topology, body_pose=canonical_body_pose(1))
        self._torso_profile = self._make_torso_profile()
        self.camera = fixed_camera(1, dtype=torch.float64)

    # -- sampling ------------------------------------------------------------------------------------

    def _make_torso_profile(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Trunk cross-sections of the rest body: heights, half-widths, front and back depths."""
        topology = self.topology
        trunk = topology.template[topology.torso & ~topology.head]
        heights = np.arange(topology.crotch_height, topology.y("neck"), 0.02)
        width, front, back = [], [], []
        for y in heights:
            slab = trunk[np.abs(trunk[:, 1] - y) < 0.015]
            if len(slab) == 0:
                slab = trunk[np.argsort(np.abs(trunk[:, 1] - y))[:10]]
            centre_z = 0.5 * (slab[:, 2].max() + slab[:, 2].min())
            half_depth = 0.5 * (slab[:, 2].max() - slab[:, 2].min())
            width.append(np.abs(slab[:, 0]).max() * TORSO_SHRINK)
            front.append(centre_z + half_depth * TORSO_SHRINK)
            back.append(centre_z - half_depth * TORSO_SHRINK)
        return heights, np.array(width), np.array(front), np.array(back)

    def arms_clear_of_torso(self, state: BodyState) -> bool:
        """Whether no forearm or hand vertex lies inside the (shrunk) trunk, tested in the rest frames of
        the spine and pelvis bones."""
        topology = self.topology
        shoulder_x = topology.x("left_shoulder")
        test = topology.arm & (np.abs(topology.template[:, 0]) > shoulder_x + 0.12)
        points = state.vertices[test][::3]
        heights, width, front, back = self._torso_profile
        for joint, (low, high) in (("spine2", (topology.y("spine1"), topology.y("neck"))), ("pelvis", (heights[0], topology.y("spine1")))):
            inverse = np.linalg.inv(state.transforms[_J[joint]])
            rest = points @ inverse[:3, :3].T + inverse[:3, 3]
            # Undo the shape: compare with the template profile through the joint heights.
            rest = rest - state.rest_joints[_J[joint]] + topology.joints[_J[joint]]
            y = rest[:, 1]
            inside_height = (y > low) & (y < high)
            w = np.interp(y, heights, width)
            f = np.interp(y, heights, front)
            b = np.interp(y, heights, back)
            inside = inside_height & (np.abs(rest[:, 0]) < w) & (rest[:, 2] < f) & (rest[:, 2] > b)
            if inside.sum() > 2:
                return False
        return True

    def _sample_orientation(self, rng: np.random.Generator) -> np.ndarray:
        view = rng.choice(3, p=VIEW_PROBABILITIES)
        if view == 0:
            yaw = rng.uniform(-FRONT_YAW, FRONT_YAW)
        elif view == 1:
            yaw = rng.uniform(*SIDE_YAW) * (1 if rng.random() < 0.5 else -1)
        else:
            yaw = math.pi + rng.uniform(-BACK_YAW, BACK_YAW)
        tilt = rng.uniform(-TILT, TILT, size=3) * np.array([1.0, 0.0, 1.0])
        rotation = _rotation_y(yaw) @ axis_angle_to_matrix(torch.as_tensor(tilt)).numpy()
        return matrix_to_axis_angle(torch.as_tensor(rotation)).numpy()

    def sample_spec(self, seed: int, index: int) -> SampleSpec:
        """The spec of sample ``index`` of the dataset with seed ``seed`` (centring included).

        Raises:
            ValueError: For a negative seed or index.
        """
        return self._sample(seed, index)[0]

    def _sample(self, seed: int, index: int) -> tuple[SampleSpec, list[tuple[MeshPiece, Material]]]:
        """The spec and its posed pieces before centring (reused by :meth:`render`)."""
        seed = check_non_negative_int(seed, "seed")
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise ValueError(f"`index` must be a non-negative integer, got {index!r}.")
        sequence = np.random.SeedSequence([seed, int(index)])
        rng = np.random.default_rng(sequence)
        generator = torch.Generator().manual_seed(int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1)))
        outfit = sample_outfit(rng, self.topology)
        betas = np.round(np.clip(rng.normal(size=NUM_BETAS), -BETA_CLIP, BETA_CLIP), LABEL_DECIMALS)
        global_orient = np.round(self._sample_orientation(rng), LABEL_DECIMALS)
        betas_t = torch.as_tensor(betas, dtype=torch.float32)[None]
        orient_t = torch.as_tensor(global_orient, dtype=torch.float32)[None]
        body_pose, state = None, None
        for _ in range(MAX_POSE_TRIES):
            candidate = _round(self._fashion_pose(generator, outfit.has_skirt))
            state = body_state(self.body, self.topology, betas_t, candidate, orient_t)
            if self.arms_clear_of_torso(state):
                body_pose = candidate
                break
        if body_pose is None:
            body_pose = _round(self._arms_down(candidate))
            state = body_state(self.body, self.topology, betas_t, body_pose, orient_t)
        spec = SampleSpec(outfit, betas, body_pose[0].double().numpy(), global_orient, np.zeros(3), 1.0, seed, int(index))
        # Centre the clothed person in the frame and scale it to fill most of it.
        pieces = self.build_pieces(outfit, state)
        vertices = np.concatenate([piece.vertices for piece, _ in pieces])
        low, high = vertices.min(0), vertices.max(0)
        spec.transl = np.round(-(low + high) / 2, LABEL_DECIMALS)
        extent = float((high - low)[:2].max())
        spec.scale = round(float(np.clip(FRAME_EXTENT / extent, *SCALE_RANGE)), LABEL_DECIMALS)
        return spec, pieces

    @staticmethod
    def _fashion_pose(generator: torch.Generator, calm_legs: bool) -> torch.Tensor:
        """A random plausible pose made fashion-photo-like: upright trunk, calmer legs, mostly hanging arms."""
        pose = random_plausible_pose(1, generator)
        for name, factor in POSE_DAMPING.items():
            j = _J[name] - 1
            pose[:, j * 3 : j * 3 + 3] *= factor
            if calm_legs and name.endswith(("hip", "knee")):
                pose[:, j * 3 : j * 3 + 3] *= LEG_DAMPING_UNDER_SKIRT
        draws = torch.rand(3, generator=generator)
        if draws[0] < ARMS_DOWN_PROBABILITY:
            for k, (name, sign) in enumerate((("left_shoulder", -1.0), ("right_shoulder", 1.0))):
                j = _J[name] - 1
                lowering = ARMS_DOWN_RANGE[0] + (ARMS_DOWN_RANGE[1] - ARMS_DOWN_RANGE[0]) * float(draws[1 + k])
                pose[:, j * 3 + 2] = sign * lowering
                pose[:, j * 3 + 1] *= ARM_SWING_DAMPING
        return pose

    @staticmethod
    def _arms_down(body_pose: torch.Tensor) -> torch.Tensor:
        pose = body_pose.clone()
        for name, sign in (("left_shoulder", -1.0), ("right_shoulder", 1.0)):
            j = _J[name] - 1
            pose[:, j * 3 : j * 3 + 3] = torch.tensor([0.0, 0.0, sign * FALLBACK_SHOULDER])
        return pose

    # -- geometry ------------------------------------------------------------------------------------

    def _state(self, spec: SampleSpec) -> BodyState:
        """The sample's body state before translation and scale."""
        return body_state(
            self.body,
            self.topology,
            torch.as_tensor(spec.betas, dtype=torch.float32)[None],
            torch.as_tensor(spec.body_pose, dtype=torch.float32)[None],
            torch.as_tensor(spec.global_orient, dtype=torch.float32)[None],
        )

    def build_pieces(self, outfit: OutfitSpec, state: BodyState) -> list[tuple[MeshPiece, Material]]:
        """The body and every garment piece of ``outfit`` on ``state``, each with its material."""
        topology = self.topology
        skin = outfit.skin
        if skin.pattern == "skin" and "points" not in skin.extra:  # painted face at this body's features
            skin = dataclasses.replace(skin, extra={**skin.extra, "points": topology.face_points})
        pieces = [(MeshPiece(state.vertices, topology.faces, 0, 0), skin)]
        context = BuildContext(state)
        for garment in outfit.garments:
            for piece in build_garment(garment, context):
                pieces.append((piece, garment.materials[piece.material]))
        return pieces

    def build_scene(self, spec: SampleSpec, uncentred: list[tuple[MeshPiece, Material]] | None = None) -> Scene:
        """The merged posed meshes of a sample, translated and scaled as its label says.

        Parameters:
            spec: The sample.
            uncentred: Its pieces already posed without translation (from sampling), to reuse.
        """
        # Posed without translation, then moved: the same arithmetic whether the pieces are reused or
        # rebuilt from a label, so a label re-renders its sample bit for bit.
        posed = uncentred if uncentred is not None else self.build_pieces(spec.outfit, self._state(spec))
        shift = np.asarray(spec.transl, dtype=np.float64)
        rest = self.build_pieces(spec.outfit, self.template_state)
        vertices, texcoords, normals, faces, face_part, face_material, materials = [], [], [], [], [], [], []
        count = 0
        for (piece, material), (rest_piece, _) in zip(posed, rest):
            if rest_piece.vertices.shape != piece.vertices.shape:
                raise RuntimeError("garment topology differs between the posed and the rest build")
            vertices.append((piece.vertices + shift) * spec.scale)
            texcoords.append(rest_piece.vertices)
            normals.append(vertex_normals(piece.vertices, piece.faces))
            faces.append(piece.faces + count)
            face_part.append(np.full(len(piece.faces), piece.part))
            face_material.append(np.full(len(piece.faces), len(materials)))
            materials.append(material)
            count += len(piece.vertices)
        return Scene(
            vertices=np.concatenate(vertices),
            texcoords=np.concatenate(texcoords),
            normals=np.concatenate(normals),
            faces=np.concatenate(faces),
            face_part=np.concatenate(face_part),
            face_material=np.concatenate(face_material),
            materials=materials,
        )

    # -- rendering -----------------------------------------------------------------------------------

    def render_spec(self, spec: SampleSpec, uncentred: list[tuple[MeshPiece, Material]] | None = None) -> RenderedSample:
        """Render a sample spec at the generator's image size (``uncentred``: see :meth:`build_scene`)."""
        scene = self.build_scene(spec, uncentred)
        size = self.image_size
        vertices = torch.as_tensor(scene.vertices, dtype=torch.float32)[None]
        camera = self.camera.to(dtype=torch.float32)
        pixels, depth = camera.project(vertices)
        faces = torch.as_tensor(scene.faces)
        camera_position = camera.positions[0].double().numpy()
        normals_t = torch.as_tensor(scene.normals, dtype=torch.float32)[None]

        def facing(normals: np.ndarray, points: np.ndarray) -> np.ndarray:
            view = camera_position - points
            flip = (normals * view).sum(-1, keepdims=True) < 0
            normals = np.where(flip, -normals, normals)
            return normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-9)

        # Labels and normals at the pixel centres.
        raster = rasterize(pixels, depth, faces, size, size)
        mask = raster.mask[0].numpy()
        face_index = raster.face_index[0].numpy()
        segm = np.zeros((size, size), dtype=np.uint8)
        segm[mask] = scene.face_part[face_index[mask]] + 1
        positions = interpolate(vertices, faces, raster)[0].numpy()
        normals = interpolate(normals_t, faces, raster)[0].numpy().astype(np.float64)
        normals[mask] = facing(normals[mask], positions[mask])
        normals[~mask] = 0.0

        # The image, supersampled.
        rng = np.random.default_rng(np.random.SeedSequence([spec.seed or 0, spec.index or 0, 7]))
        light = np.array([rng.uniform(-0.5, 0.5), rng.uniform(0.3, 0.8), 1.0])
        light /= np.linalg.norm(light)
        ambient, diffuse = rng.uniform(*AMBIENT), rng.uniform(*DIFFUSE)
        factor = self.supersample
        big = size * factor
        if factor > 1:
            raster = rasterize(pixels, depth, faces, big, big)
        big_mask = raster.mask[0].numpy()
        big_faces = raster.face_index[0].numpy()[big_mask]
        texcoords = interpolate(torch.as_tensor(scene.texcoords, dtype=torch.float32)[None], faces, raster)[0].numpy()[big_mask]
        shading_normals = interpolate(normals_t, faces, raster)[0].numpy()[big_mask].astype(np.float64)
        points = interpolate(vertices, faces, raster)[0].numpy()[big_mask].astype(np.float64)
        shading_normals = facing(shading_normals, points)
        albedo = np.zeros((len(big_faces), 3))
        material_of_pixel = scene.face_material[big_faces]
        for material_index in np.unique(material_of_pixel):
            selected = material_of_pixel == material_index
            albedo[selected] = evaluate_material(scene.materials[material_index], texcoords[selected].astype(np.float64))
        lambert = np.clip(shading_normals @ light, 0.0, 1.0)
        color = np.clip(albedo * (ambient + diffuse * lambert)[:, None], 0.0, 1.0)
        image = np.ones((big, big, 3))
        image[big_mask] = color
        if factor > 1:
            image = image.reshape(size, factor, size, factor, 3).mean((1, 3))
        image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
        camera_label = {
            "cam2world": self.camera.cam2world[0].tolist(),
            "intrinsics": self.camera.intrinsics[0].tolist(),
        }
        return RenderedSample(image=image, segm=segm, normals=normals.astype(np.float32), camera=camera_label, spec=spec)

    def render(self, seed: int, index: int) -> RenderedSample:
        """Sample and render sample ``index`` of the dataset with seed ``seed``."""
        spec, uncentred = self._sample(seed, index)
        return self.render_spec(spec, uncentred)

    # -- canonical meshes ----------------------------------------------------------------------------

    def part_meshes(self, outfit: OutfitSpec, betas: np.ndarray | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per-part meshes ``{part: (vertices (N, 3), faces (F, 3))}`` in the canonical Da-pose (betas 0
        unless ``betas`` is given), for the parts the outfit has."""
        state = self.canonical_state
        if betas is not None:
            state = body_state(self.body, self.topology, torch.as_tensor(betas, dtype=torch.float32).reshape(1, NUM_BETAS),
                               canonical_body_pose(1))
        grouped: dict[str, list[MeshPiece]] = {}
        for piece, _ in self.build_pieces(outfit, state):
            grouped.setdefault(PARTS[piece.part], []).append(piece)
        meshes = {}
        for part in PARTS:
            if part not in grouped:
                continue
            vertices, faces, count = [], [], 0
            for piece in grouped[part]:
                vertices.append(piece.vertices)
                faces.append(piece.faces + count)
                count += len(piece.vertices)
            meshes[part] = (np.concatenate(vertices), np.concatenate(faces))
        return meshes


# ----------------------------------------------------------------------------------------------------
# Canonical part meshes
# ----------------------------------------------------------------------------------------------------


_MESH_SUFFIXES = (".ply", ".obj")


def export_part_meshes(
    sample_spec: SampleSpec | OutfitSpec | Mapping[str, Any],
    out_dir: str | os.PathLike,
    file_format: str = "ply",
    use_sample_shape: bool = False,
    generator: SyntheticHumanGenerator | None = None,
) -> dict[str, Path]:
    """Write the ground-truth canonical mesh of every part a sample wears.

    Parameters:
        sample_spec: A :class:`SampleSpec`, an :class:`OutfitSpec`, or a dataset label / its extras
            written by this generator.
        out_dir: Folder for ``<part>.<file_format>`` (created).
        file_format: ``"ply"`` or ``"obj"``.
        use_sample_shape: Use the sample's betas instead of betas 0 (the canonical body of docs/method.md §2).
        generator: A generator to reuse (its body model); a new one by default.

    Returns:
        ``{part: path}`` for the parts present (``"body"`` includes hair).

    Raises:
        ValueError: For an unknown file format or an unusable spec.
    """
    import trimesh

    if f".{file_format}" not in _MESH_SUFFIXES:
        raise ValueError(f"`file_format` must be one of {[s[1:] for s in _MESH_SUFFIXES]}, got {file_format!r}.")
    betas = None
    if isinstance(sample_spec, SampleSpec):
        outfit, betas = sample_spec.outfit, sample_spec.betas
    elif isinstance(sample_spec, OutfitSpec):
        outfit = sample_spec
        if use_sample_shape:
            raise ValueError("`use_sample_shape` needs a SampleSpec or a label with betas, got an OutfitSpec.")
    elif isinstance(sample_spec, Mapping):
        label = sample_spec if "smpl" in sample_spec else {"extras": sample_spec, "smpl": None}
        extras = label.get("extras") or {}
        if extras.get("generator") != GENERATOR_NAME or "outfit" not in extras:
            raise ValueError(f"`sample_spec` must be a SampleSpec, an OutfitSpec or a label of the synthetic generator, got keys {sorted(sample_spec)}.")
        outfit = OutfitSpec.from_dict(extras["outfit"])
        if label.get("smpl") is not None:
            betas = np.asarray(label["smpl"]["betas"], dtype=np.float64)
    else:
        raise ValueError(f"`sample_spec` must be a SampleSpec, an OutfitSpec or a label mapping, got {type(sample_spec).__name__}.")
    if use_sample_shape and betas is None:
        raise ValueError("`use_sample_shape` needs the sample's betas (a SampleSpec or a full label).")
    generator = generator or SyntheticHumanGenerator()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for part, (vertices, faces) in generator.part_meshes(outfit, betas if use_sample_shape else None).items():
        path = out_dir / f"{part}.{file_format}"
        trimesh.Trimesh(vertices=vertices, faces=faces, process=False).export(path)
        paths[part] = path
    return paths


# ----------------------------------------------------------------------------------------------------
# The dataset driver
# ----------------------------------------------------------------------------------------------------


def sample_name(index: int) -> str:
    """File name of sample ``index``."""
    return f"{index:06d}.png"


_WORKER: dict[str, Any] = {}


def _worker_init(image_size: int, supersample: int | None) -> None:
    """Pool initializer: one thread per worker process, one generator per worker."""
    torch.set_num_threads(1)
    _WORKER["generator"] = SyntheticHumanGenerator(image_size, supersample)


def _render_and_write(generator: SyntheticHumanGenerator, job: tuple[str, int, int, bool]) -> list:
    out_dir, seed, index, with_normals = job
    sample = generator.render(seed, index)
    return write_sample(
        out_dir,
        sample_name(index),
        sample.image,
        sample.segm,
        sample.camera,
        sample.spec.smpl_label(),
        normals=sample.normals if with_normals else None,
        extras=sample.spec.extras(),
    )


def _worker_task(job: tuple[str, int, int, bool]) -> list:
    return _render_and_write(_WORKER["generator"], job)


def generate_dataset(
    out_dir: str | os.PathLike,
    num: int,
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    workers: int = 1,
    with_normals: bool = True,
    supersample: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    resolution: int | None = None,
) -> Path:
    """Generate a synthetic dataset folder (see ``docs/dataset_format.md``).

    Parameters:
        out_dir: The dataset folder (created).
        num: Number of samples.
        image_size: Image side R in pixels.
        seed: Dataset seed; sample ``i`` depends only on ``(seed, i)``.
        workers: Worker processes (1 renders in this process).
        with_normals: Write normal maps.
        supersample: Anti-aliasing factor (default as :class:`SyntheticHumanGenerator`).
        overwrite: Allow replacing an existing dataset in ``out_dir``.
        progress: Show a tqdm progress bar.
        resolution: Deprecated name of ``image_size``.

    Returns:
        The path of ``dataset.json``.

    Raises:
        ValueError: For a non-positive ``num``, ``image_size``, ``workers`` or ``supersample``, a
            negative ``seed``, or an existing dataset without ``overwrite``.
    """
    from tqdm.auto import tqdm

    num = check_positive_int(num, "num")
    argument = "image_size" if resolution is None else "resolution"
    image_size = renamed_argument(image_size, resolution, "image_size", "resolution", default=DEFAULT_IMAGE_SIZE)
    image_size = check_positive_int(image_size, argument)
    workers = check_positive_int(workers, "workers")
    seed = check_non_negative_int(seed, "seed")
    if supersample is not None:
        check_positive_int(supersample, "supersample")
    out_dir = Path(out_dir)
    if (out_dir / INDEX_FILE).exists() and not overwrite:
        raise DatasetFormatError(f"`out_dir` {out_dir} already holds a {INDEX_FILE}; pass overwrite=True to replace it.")
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(str(out_dir), seed, index, with_normals) for index in range(num)]
    entries = []
    bar = tqdm(total=num, desc="synthetic humans", unit="img", disable=not progress)
    try:
        if workers == 1:
            generator = SyntheticHumanGenerator(image_size, supersample)
            for job in jobs:
                entries.append(_render_and_write(generator, job))
                bar.update()
        else:
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers, initializer=_worker_init, initargs=(image_size, supersample)) as pool:
                for entry in pool.imap(_worker_task, jobs, chunksize=1):
                    entries.append(entry)
                    bar.update()
    finally:
        bar.close()
    info = {
        "generator": GENERATOR_NAME,
        "version": GENERATOR_VERSION,
        "seed": seed,
        "num": num,
        "normal_frame": "world",
        "body_model": "open",
    }
    return write_index(out_dir, entries, image_size, with_normals, info)
