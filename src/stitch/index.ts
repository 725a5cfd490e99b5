/**
 * The layered root (docs/erofs.md §7–§8): merge, fsmeta, VMDK, validation, and the public
 * `stitchLayers` utility (docs/api.md §5).
 */
export { stitchLayers, FSMETA_NAME, VMDK_NAME, type StitchResult } from './stitch.js';
export {
  buildFsmeta,
  planFsmeta,
  writeFsmetaPlan,
  stitchVmdkText,
  type FsmetaLayer,
  type FsmetaPlan,
} from './build.js';
export { mergeLayers } from './merge.js';
export { diffIdTag, uuidTag, standInDigest, headerBlocks, deviceSlots, type DeviceSlot } from './fsmeta.js';
export {
  validateFsmetaFile,
  validateLayerFile,
  validateVmdkFile,
  fsmetaHeaderProblem,
  type FsmetaExpected,
} from './validate.js';
export { cidOf, vmdkText, validateVmdk, parseVmdk, vmdkPathProblem } from './vmdk.js';
